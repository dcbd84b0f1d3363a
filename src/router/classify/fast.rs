//! The common case without the lexer: one plain `SELECT` made only of
//! words, numbers, `$n` parameters, whitespace, commas, dots, `*` and
//! comparison operators. With no parenthesis there is no function call (so
//! the function policy has nothing to judge), with no quote, `-` or `/`
//! there is no string, quoted identifier or comment to lex, and with no `;`
//! but a trailing one there is no second statement. Such a text is read-only
//! unless one of its words is a keyword the classifier rejects (`INTO`,
//! `FOR`, `INSERT`, `UPDATE`, `DELETE`, `MERGE`); then, as for every other
//! text, the full classifier decides.
//!
//! `simple_select(text) == Some(v)` implies `classify(text) == v`; the fuzz
//! target and the tests check it.

use super::{is_space, Verdict};

/// Byte classes of the shortcut: a word byte, whitespace, allowed
/// punctuation, `;`, `$`, and everything else (0).
const WORD: u8 = 1;
const SPACE: u8 = 2;
const PUNCT: u8 = 3;
const SEMI: u8 = 4;
const DOLLAR: u8 = 5;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_alphanumeric() || b == b'_' {
            WORD
        } else if is_space(b) {
            SPACE
        } else if matches!(b, b',' | b'.' | b'=' | b'<' | b'>' | b'*') {
            PUNCT
        } else if b == b';' {
            SEMI
        } else if b == b'$' {
            DOLLAR
        } else {
            0
        };
        i += 1;
    }
    t
}

/// Words that make the full classifier look closer (it may say Write):
/// INTO, FOR, INSERT, UPDATE, DELETE, MERGE.
fn blocked(word: &[u8]) -> bool {
    let Some(first) = word.first() else {
        return false;
    };
    let is = |k: &[u8]| word.eq_ignore_ascii_case(k);
    match first.to_ascii_lowercase() {
        b'i' => is(b"into") || is(b"insert"),
        b'f' => is(b"for"),
        b'u' => is(b"update"),
        b'd' => is(b"delete"),
        b'm' => is(b"merge"),
        _ => false,
    }
}

/// `Some(Verdict::ReadOnly)` for a plain single SELECT as described above;
/// `None` for anything else.
pub(super) fn simple_select(src: &[u8]) -> Option<Verdict> {
    let start = src.iter().position(|&b| !is_space(b))?;
    // The end: trailing whitespace, at most one `;`, whitespace before it.
    let mut end = src.len();
    while end > start && is_space(src[end - 1]) {
        end -= 1;
    }
    if end > start && src[end - 1] == b';' {
        end -= 1;
    }
    let text = &src[start..end];
    if text.len() < 7 || !text[..6].eq_ignore_ascii_case(b"select") || !is_space(text[6]) {
        return None;
    }
    let body = &text[7..];
    let n = body.len();
    let mut words = 0usize;
    let mut i = 0;
    while i < n {
        let b = body[i];
        match CLASS[usize::from(b)] {
            WORD => {
                let first = i;
                i += 1;
                while i < n && CLASS[usize::from(body[i])] == WORD {
                    i += 1;
                }
                let word = &body[first..i];
                // `1into` lexes as `1 into`; numbers with letters (1e5,
                // 0x1f) are left to the lexer too.
                let bad = if b.is_ascii_digit() {
                    !word.iter().all(u8::is_ascii_digit)
                } else {
                    blocked(word)
                };
                if bad {
                    return None;
                }
                words += 1;
            }
            SPACE | PUNCT => i += 1,
            // `$1`: a parameter (a dollar quote's tag never starts with a digit).
            DOLLAR if body.get(i + 1).is_some_and(u8::is_ascii_digit) => i += 1,
            // A `;` before the end, a quote, a comment, a parenthesis...
            _ => return None,
        }
    }
    (words > 0).then_some(Verdict::ReadOnly)
}

/// `Some(TxEffect::None)` when the text is one statement (no `;` but
/// trailing ones) whose first token is a plain word that is no transaction
/// keyword (BEGIN, START, COMMIT, END, ROLLBACK, ABORT, PREPARE): then
/// [`super::tx_effect`] says `None` too, without lexing the statement.
/// `None` (decide with the lexer) for anything else, comments first included.
pub(super) fn no_tx_effect(src: &[u8]) -> Option<super::TxEffect> {
    let start = src.iter().position(|&b| !is_space(b))?;
    let rest = &src[start..];
    let len = rest
        .iter()
        .position(|&b| CLASS[usize::from(b)] != WORD)
        .unwrap_or(rest.len());
    let word = &rest[..len];
    if word.is_empty() || word[0].is_ascii_digit() {
        return None;
    }
    // A word glued to a quote or `&` (E'..', U&"..") is not a plain keyword.
    if matches!(rest.get(len), Some(b'\'' | b'"' | b'&' | b'$')) {
        return None;
    }
    let is = |k: &[u8]| word.eq_ignore_ascii_case(k);
    if is(b"begin")
        || is(b"start")
        || is(b"commit")
        || is(b"end")
        || is(b"rollback")
        || is(b"abort")
        || is(b"prepare")
    {
        return None;
    }
    // One statement: any `;` is followed by only `;` and whitespace.
    if let Some(semi) = memchr::memchr(b';', rest) {
        if !rest[semi..].iter().all(|&b| b == b';' || is_space(b)) {
            return None;
        }
    }
    Some(super::TxEffect::None)
}

#[cfg(test)]
mod tests {
    use super::super::{classify, FunctionPolicy};
    use super::*;

    #[test]
    fn plain_selects_take_the_fast_path_and_agree_with_the_lexer() {
        let policies = [
            FunctionPolicy::default(),
            FunctionPolicy::allow_list(&["lower"]),
            FunctionPolicy::deny_list(&["nextval"]),
        ];
        let fast = [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
            "select a, b.c FROM t WHERE x >= $1 AND y <> $2 ORDER BY a LIMIT 10",
            "  SELECT * FROM t  ;  ",
            "SELECT nextval FROM t",
            "SELECT 1",
        ];
        for sql in fast {
            assert_eq!(
                simple_select(sql.as_bytes()),
                Some(Verdict::ReadOnly),
                "{sql}"
            );
            for p in &policies {
                assert_eq!(classify(sql, p), Verdict::ReadOnly, "{sql}");
            }
        }
        let slow = [
            "SELECT * INTO t2 FROM t",
            "SELECT * FROM t FOR UPDATE",
            "SELECT 1into",
            "SELECT 1e5",
            "SELECT nextval('s')",
            "SELECT 'x'",
            "SELECT a FROM t; DELETE FROM t",
            "SELECT 1; SELECT 2",
            "SELECT a -- comment",
            "SELECT a /* c */",
            "SELECT $$x$$",
            "SELECT $a",
            "SELECT \"a\" FROM t",
            "SELECT",
            "SELECT ;",
            "SELECTa FROM t",
            "UPDATE t SET a = 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT a FROM t WHERE b = 1 ; x",
        ];
        for sql in slow {
            assert_eq!(simple_select(sql.as_bytes()), None, "{sql}");
        }
    }

    /// Random texts built from the pieces a plain SELECT is made of (and a
    /// few that are not): wherever the shortcut answers, the lexer agrees.
    #[test]
    fn shortcut_agrees_with_the_lexer_on_generated_texts() {
        const PIECES: [&str; 36] = [
            "select", "SELECT", "from", "t", "a_1", "where", "and", "x", "=", "<", ">=", "*", ",",
            ".", "$1", "$22", "42", "7", " ", "  ", "\n", ";", "into", "For", "update", "1into",
            "(", "'", "delete", "MERGE", "insert", "id", "u", "fin", "$1x", "é",
        ];
        let policy = FunctionPolicy::default();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        let mut fast = 0;
        for _ in 0..20_000 {
            let mut sql = String::from(if next(4) == 0 { " select " } else { "SELECT " });
            for _ in 0..next(12) {
                sql.push_str(PIECES[next(PIECES.len())]);
                if next(2) == 0 {
                    sql.push(' ');
                }
            }
            if let Some(v) = simple_select(sql.as_bytes()) {
                fast += 1;
                assert_eq!(super::super::classify_lexed(&sql, &policy), v, "{sql:?}");
            }
        }
        assert!(
            fast > 1_000,
            "the generator rarely hits the shortcut ({fast})"
        );
    }

    #[test]
    fn the_transaction_shortcut_agrees_with_the_lexer() {
        use super::super::{tx_effect_lexed, TxEffect};
        for sql in [
            "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 2;",
            "insert into t values (1, 'a;b')",
            "SELECT 1;  ;",
            "selectü 1",
            "rollbackx",
            "COMMIT",
            "commit;",
            "end",
            "BEGIN READ ONLY",
            "start transaction",
            "prepare transaction 'x'",
            "ROLLBACK TO SAVEPOINT a",
            "/* c */ COMMIT",
            "(SELECT 1); COMMIT",
            "SELECT 1; COMMIT",
            "x'00'; commit",
            "U&\"a\"; commit",
            "a$b; commit",
            "9 commit",
            "",
            "   ",
        ] {
            let fast = no_tx_effect(sql.as_bytes());
            if let Some(e) = fast {
                assert_eq!(e, TxEffect::None);
                assert_eq!(tx_effect_lexed(sql), e, "{sql:?}");
            }
        }
        assert_eq!(no_tx_effect(b"UPDATE t SET a = 1;"), Some(TxEffect::None));
        assert_eq!(no_tx_effect(b"COMMIT"), None);
        assert_eq!(no_tx_effect(b"SELECT 1; COMMIT"), None);
        assert_eq!(no_tx_effect(b"/* c */ COMMIT"), None);
    }
}
