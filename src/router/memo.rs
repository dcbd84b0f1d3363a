//! What the router learnt about recent extended-protocol statement texts.
//!
//! A `Parse` carries a parameterised text that clients send again and again
//! (an ORM's statements, pgbench `-M extended` every transaction), unlike
//! simple `Query` texts, which usually carry their literals. Classifying a
//! text costs a pass over it (and the lexer when the plain-SELECT shortcut
//! does not apply); looking it up here costs a hash of the text and one
//! comparison. Per thread (no lock, no sharing between workers), direct
//! mapped: `SLOTS` entries of texts up to `MAX_TEXT` bytes, the newer text
//! taking the slot of an older one with the same hash. Entries carry the key
//! of the settings they were computed under (`Knobs::memo_key`): after a
//! reload changes the function policy, old entries no longer match.

use std::cell::RefCell;

use super::decide::BatchFacts;

/// Entries per thread.
const SLOTS: usize = 64;
/// Longer texts are classified every time (and not copied here).
pub const MAX_TEXT: usize = 512;

struct Slot {
    key: u64,
    facts: BatchFacts,
    text: Box<[u8]>,
}

thread_local! {
    static MEMO: RefCell<[Option<Slot>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

/// A cheap hash of the text (FxHash-style over 8-byte words), only to pick a
/// slot: a hit is confirmed by comparing the text itself.
fn slot_of(text: &[u8]) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let mut h = text.len() as u64;
    let mut words = text.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = mix(h, u64::from_le_bytes(b));
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = mix(h, u64::from_le_bytes(tail));
    (h >> 58) as usize % SLOTS
}

/// The facts remembered for `text` under settings `key`, if any.
pub fn get(text: &[u8], key: u64) -> Option<BatchFacts> {
    if text.len() > MAX_TEXT {
        return None;
    }
    let i = slot_of(text);
    MEMO.with(|m| {
        let m = m.borrow();
        match &m[i] {
            Some(s) if s.key == key && *s.text == *text => Some(s.facts),
            _ => None,
        }
    })
}

/// Remembers `facts` for `text` under settings `key` (texts longer than
/// `MAX_TEXT` are not kept).
pub fn put(text: &[u8], key: u64, facts: BatchFacts) {
    if text.len() > MAX_TEXT {
        return;
    }
    let i = slot_of(text);
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        match &mut m[i] {
            // Same length: the slot's allocation is reused.
            Some(s) if s.text.len() == text.len() => {
                s.text.copy_from_slice(text);
                s.key = key;
                s.facts = facts;
            }
            slot => {
                *slot = Some(Slot {
                    key,
                    facts,
                    text: text.into(),
                })
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::classify::{TxEffect, Verdict};

    fn facts(verdict: Verdict) -> BatchFacts {
        BatchFacts {
            hint: None,
            verdict,
            tx: TxEffect::None,
            plain: false,
        }
    }

    #[test]
    fn a_text_is_found_only_under_the_same_settings_and_bytes() {
        let text = b"SELECT abalance FROM pgbench_accounts WHERE aid = $1;";
        assert!(get(text, 7).is_none());
        put(text, 7, facts(Verdict::ReadOnly));
        assert_eq!(get(text, 7).map(|f| f.verdict), Some(Verdict::ReadOnly));
        // Another settings key (a reload), or one byte different: not found.
        assert!(get(text, 8).is_none());
        assert!(get(b"SELECT abalance FROM pgbench_accounts WHERE aid = $2;", 7).is_none());
        // The same slot with a newer verdict replaces the old one.
        put(text, 8, facts(Verdict::Write));
        assert_eq!(get(text, 8).map(|f| f.verdict), Some(Verdict::Write));
        assert!(get(text, 7).is_none());
    }

    #[test]
    fn colliding_texts_evict_each_other_and_never_mix() {
        // Many texts: some share slots; each lookup returns its own text's
        // facts or nothing.
        let texts: Vec<String> = (0..500).map(|i| format!("SELECT c{i} FROM t")).collect();
        for (i, t) in texts.iter().enumerate() {
            let v = if i % 2 == 0 {
                Verdict::ReadOnly
            } else {
                Verdict::Write
            };
            put(t.as_bytes(), 1, facts(v));
        }
        let mut found = 0;
        for (i, t) in texts.iter().enumerate() {
            if let Some(f) = get(t.as_bytes(), 1) {
                found += 1;
                let v = if i % 2 == 0 {
                    Verdict::ReadOnly
                } else {
                    Verdict::Write
                };
                assert_eq!(f.verdict, v, "{t}");
            }
        }
        assert!(found > 0 && found <= SLOTS, "{found}");
    }

    #[test]
    fn long_texts_are_not_kept() {
        let long = vec![b'a'; MAX_TEXT + 1];
        put(&long, 1, facts(Verdict::ReadOnly));
        assert!(get(&long, 1).is_none());
    }
}
