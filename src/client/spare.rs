//! Spare I/O buffers, per thread. A client hands its empty buffers back
//! whenever it waits for its next request and takes one again when it
//! reads: idle clients hold no buffer, and busy ones allocate none per
//! transaction (the same few buffers circulate), without a timer per wait.

use std::cell::RefCell;

use bytes::BytesMut;

use super::io::READ_CHUNK;

/// Buffers kept per thread at most (2 MiB); beyond that they are freed.
const MAX_SPARE: usize = 256;
/// Buffers grown for a large message are freed rather than kept.
const MAX_KEPT: usize = 2 * READ_CHUNK;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Makes sure `buf` has room for a read of about [`READ_CHUNK`]: a spare
/// buffer if it has none yet, else grown as usual.
pub fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() >= 1024 {
        return;
    }
    if buf.capacity() == 0 {
        if let Some(spare) = SPARE.with(|s| s.borrow_mut().pop()) {
            *buf = spare;
            return;
        }
    }
    buf.reserve(READ_CHUNK);
}

/// Takes `buf` if it is empty, keeping its memory for the next reader
/// (or freeing it); `buf` is left without capacity.
pub fn give(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    let mut b = std::mem::take(buf);
    // Room of bytes already consumed is reclaimed in place; a buffer that
    // was never that big (a login buffer) is simply freed.
    if b.capacity() < READ_CHUNK && !b.try_reclaim(READ_CHUNK) {
        return;
    }
    if b.capacity() <= MAX_KEPT {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < MAX_SPARE {
                s.push(b);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_circulate_and_big_ones_are_freed() {
        let mut a = BytesMut::new();
        reserve(&mut a);
        assert!(a.capacity() >= READ_CHUNK);
        a.extend_from_slice(b"partial");
        give(&mut a);
        assert_eq!(&a[..], b"partial", "a buffer with bytes is kept");
        a.clear();
        let ptr = a.as_ptr();
        give(&mut a);
        assert_eq!(a.capacity(), 0);
        let mut b = BytesMut::new();
        reserve(&mut b);
        assert_eq!(b.as_ptr(), ptr, "the spare is reused");
        let mut big = BytesMut::with_capacity(MAX_KEPT * 4);
        give(&mut big);
        let mut c = BytesMut::new();
        reserve(&mut c);
        assert!(c.capacity() <= MAX_KEPT, "a grown buffer is not handed out");
    }
}
