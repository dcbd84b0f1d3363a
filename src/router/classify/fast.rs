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

/// Words that make the full classifier look closer (it may say Write).
const BLOCKED: [&[u8]; 6] = [b"into", b"for", b"insert", b"update", b"delete", b"merge"];

/// `Some(Verdict::ReadOnly)` for a plain single SELECT as described above;
/// `None` for anything else.
pub(super) fn simple_select(src: &[u8]) -> Option<Verdict> {
    let mut i = src.iter().position(|&b| !is_space(b))?;
    if !src.get(i..i + 6)?.eq_ignore_ascii_case(b"select") {
        return None;
    }
    i += 6;
    if !is_space(*src.get(i)?) {
        return None;
    }
    let mut words = 0usize;
    let mut ended = false;
    while i < src.len() {
        let b = src[i];
        if b.is_ascii_alphanumeric() || b == b'_' {
            let start = i;
            while src
                .get(i)
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
            {
                i += 1;
            }
            let word = &src[start..i];
            // `1into` lexes as `1 into`; numbers with letters (1e5, 0x1f)
            // are left to the lexer too.
            let numeric = word[0].is_ascii_digit();
            if ended
                || (numeric && !word.iter().all(u8::is_ascii_digit))
                || BLOCKED.iter().any(|k| word.eq_ignore_ascii_case(k))
            {
                return None;
            }
            words += 1;
            continue;
        }
        match b {
            _ if is_space(b) => {}
            b';' if !ended => ended = true,
            _ if ended => return None,
            b',' | b'.' | b'=' | b'<' | b'>' | b'*' => {}
            // `$1`: a parameter (a dollar quote's tag never starts with a digit).
            b'$' if src.get(i + 1).is_some_and(u8::is_ascii_digit) => {}
            _ => return None,
        }
        i += 1;
    }
    (words > 0).then_some(Verdict::ReadOnly)
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
        const PIECES: [&str; 28] = [
            "select", "SELECT", "from", "t", "a_1", "where", "and", "x", "=", "<", ">=", "*", ",",
            ".", "$1", "$22", "42", "7", " ", "  ", "\n", ";", "into", "For", "update", "1into",
            "(", "'",
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
}
