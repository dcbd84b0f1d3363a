//! Spare I/O buffers, per thread. A client hands its empty buffers back
//! whenever it waits for its next request and takes one again when it
//! reads: idle clients hold no buffer, and busy ones allocate none per
//! transaction (the same few buffers circulate), without a timer per wait.

use std::cell::RefCell;

use bytes::BytesMut;

use super::io::READ_CHUNK;
use super::pump::Busy;

/// Buffers kept per thread at most (2 MiB); beyond that they are freed.
const MAX_SPARE: usize = 256;
/// Buffers grown for a large message are freed rather than kept.
const MAX_KEPT: usize = 2 * READ_CHUNK;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    // Boxes, not values: sessions hold them boxed, and they move in and out
    // of the list without being copied or reallocated.
    #[allow(clippy::vec_box)]
    static SPARE_BUSY: RefCell<Vec<Box<Busy>>> = const { RefCell::new(Vec::new()) };
}

/// Request-time states kept per thread for clients to come (each is about
/// 750 bytes plus the scratch buffers it grew).
const MAX_SPARE_BUSY: usize = 256;

/// A request-time state for a client about to send work: a spare one if
/// the thread has one, else a new one.
pub fn take_busy() -> Box<Busy> {
    SPARE_BUSY
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_default()
}

/// Takes a parked client's request-time state when it holds nothing of the
/// client's own (`Busy::is_spare`): a client that waits between
/// transactions then costs no more than one that only logged in, and the
/// next request of any client on this thread reuses it (no allocation).
pub fn give_busy(busy: &mut Option<Box<Busy>>) {
    let Some(mut b) = busy.take_if(|b| b.is_spare()) else {
        return;
    };
    give(&mut b.sbuf);
    SPARE_BUSY.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < MAX_SPARE_BUSY {
            s.push(b);
        }
    });
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

    #[test]
    fn a_parked_clients_state_is_reused_only_when_it_holds_nothing_of_its_own() {
        // Fresh thread: its own spare list.
        std::thread::spawn(|| {
            let mut busy = Some(take_busy());
            let ptr = busy.as_deref().map(|b| b as *const Busy);
            give_busy(&mut busy);
            assert!(busy.is_none(), "an empty state goes to the spares");
            let again = take_busy();
            assert_eq!(
                Some(&*again as *const Busy),
                ptr,
                "and comes back without allocating"
            );

            let mut wrote = Some(again);
            if let Some(b) = wrote.as_deref_mut() {
                b.ryw.wrote(std::time::Instant::now());
            }
            give_busy(&mut wrote);
            assert!(
                wrote.is_some(),
                "a read-your-writes position stays with its client"
            );

            let mut set = Some(take_busy());
            if let Some(b) = set.as_deref_mut() {
                b.replay.observe("SET search_path = app", false, false);
                assert!(!b.replay.sets.is_empty());
            }
            give_busy(&mut set);
            assert!(set.is_some(), "session state stays with its client");
        })
        .join()
        .unwrap();
    }
}
