//! A client's session state as seen from its statements: the session-level
//! SET statements in effect (one per parameter, the last one wins), and the
//! state that cannot move between server connections (temporary tables,
//! session advisory locks, LISTEN, WITH HOLD cursors, prepared statements).
//!
//! Transaction and statement modes use it to give each client its own
//! settings on whichever server connection runs its next transaction, and
//! to pin a client to its server connection while it holds state that
//! cannot move. Session mode uses it to move a session to a new server
//! connection after the old one was lost.
//!
//! This looks only at the first words of each statement (and a few marker
//! function names); it never parses SQL fully.

use crate::router::classify::is_space;
use crate::server::ParamSet;

/// Statements starting with one of these may change session state.
const STATE_KEYWORDS: &[&str] = &[
    "set",
    "reset",
    "discard",
    "deallocate",
    "listen",
    "unlisten",
    "create",
    "declare",
    "close",
    "prepare",
];

/// At most this many parameters are tracked; beyond that the session is
/// treated as not movable (something is setting things in a loop).
const MAX_SETS: usize = 256;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// Parameter name (lower case) → the SET statement that set it.
    pub sets: ParamSet,
    /// Why the session cannot move to another server connection, if so.
    pub unreplayable: Option<&'static str>,
    /// Bumped whenever `sets` changes.
    pub generation: u64,
    /// A RESET ALL or DISCARD ALL ran: the server connection it ran on is
    /// back to its defaults (startup parameters applied by pgferry too).
    pub reset_all: bool,
    /// A DEALLOCATE ALL or DISCARD ALL ran: the server connection has no
    /// prepared statements any more (RESET ALL keeps them).
    pub deallocated: bool,
}

/// What a SET or RESET statement does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SetEffect {
    Set(String),
    Reset(String),
    ResetAll,
}

impl SessionState {
    /// Notes what one statement (a Query's text, or a Parse's) does to
    /// session state. `named`: a Parse of a named statement. `in_block`:
    /// it runs inside a transaction block, where a SET may still be rolled
    /// back (such a SET makes the session unmovable).
    /// Whether `observe` could do anything with this text: false for the
    /// usual statement (no state keyword first, no `;` or `(`, plain ASCII),
    /// which then need not even be checked for UTF-8. Conservative: true
    /// whenever unsure.
    pub fn may_observe(sql: &[u8]) -> bool {
        // (The whitespace `str::trim_start` / `trim_end` skip in ASCII.)
        let space = |b: &u8| is_space(*b);
        if !sql.is_ascii() {
            return true;
        }
        // One vectorised pass finds the first `(` or `;`.
        if let Some(i) = memchr::memchr2(b'(', b';', sql) {
            if sql[i] == b'(' || memchr::memchr(b'(', &sql[i..]).is_some() {
                return true;
            }
            // More than one statement, judged as `observe` does: trailing
            // whitespace, then trailing semicolons, are not a second one.
            let end = sql.iter().rposition(|b| !space(b)).map_or(0, |e| e + 1);
            let end = sql[..end]
                .iter()
                .rposition(|&b| b != b';')
                .map_or(0, |e| e + 1);
            if i < end {
                return true;
            }
        }
        let start = sql.iter().position(|b| !space(b)).unwrap_or(sql.len());
        let rest = &sql[start..];
        let len = rest
            .iter()
            .position(|b| !b.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let first = &rest[..len];
        STATE_KEYWORDS
            .iter()
            .any(|k| first.eq_ignore_ascii_case(k.as_bytes()))
    }

    pub fn observe(&mut self, sql: &str, named: bool, in_block: bool) {
        if named {
            self.unreplayable = Some("prepared statements");
        }
        // Fast path, no allocation: most statements start with a keyword
        // that cannot change session state and call no function.
        let first = sql
            .trim_start()
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("");
        let multi = sql.trim_end().trim_end_matches(';').contains(';');
        if !multi && !STATE_KEYWORDS.iter().any(|k| first.eq_ignore_ascii_case(k)) {
            if sql.contains('(') {
                self.observe_calls(sql);
            }
            return;
        }
        // A query made only of SET/RESET statements is taken statement by
        // statement (a naive split: a ';' inside a quoted value makes a part
        // that is not a SET, and then the whole query counts as mixed).
        let parts: Vec<&str> = sql
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let all_sets = parts
            .iter()
            .all(|p| starts_with_word(p, "set") || starts_with_word(p, "reset"));
        if parts.len() > 1 && all_sets {
            for part in parts {
                self.observe(part, false, in_block);
            }
            return;
        }
        if parts.len() > 1 {
            // A mixed multi-statement query, statement by statement, in
            // order: RESET ALL resets as on its own (asyncpg's pool reset
            // ends with it); any other SET or RESET makes the session
            // unmovable (it may be rolled back with the others).
            for part in &parts {
                match set_effect(part) {
                    None => self.observe_other(part),
                    Some(SetEffect::ResetAll) if !in_block => self.reset_everything(),
                    Some(_) => self.unreplayable = Some("SET inside a multi-statement query"),
                }
            }
            return;
        }
        let text = sql.trim();
        match set_effect(text) {
            Some(_) if in_block => self.unreplayable = Some("SET inside a transaction block"),
            Some(SetEffect::Set(name)) => self.record(&name, text),
            Some(SetEffect::Reset(name)) => {
                if self.sets.get(&name).is_some() {
                    self.sets.remove(&name);
                    self.generation += 1;
                }
            }
            Some(SetEffect::ResetAll) => self.reset_everything(),
            None => self.observe_other(text),
        }
    }

    /// RESET ALL: every parameter back to its default (pgferry applies the
    /// client's startup parameters again before its next statement).
    fn reset_everything(&mut self) {
        self.sets = ParamSet::new();
        self.generation += 1;
        self.reset_all = true;
    }

    fn observe_other(&mut self, text: &str) {
        let mut words = text
            .split(|c: char| c.is_ascii_whitespace() || c == ';' || c == '(')
            .filter(|w| !w.is_empty());
        let first = words.next().unwrap_or("").to_ascii_lowercase();
        let second = words.next().unwrap_or("").to_ascii_lowercase();
        let has = |needle: &str| contains_ci(text, needle);
        match first.as_str() {
            "discard" if second == "all" => {
                *self = SessionState {
                    generation: self.generation + 1,
                    reset_all: true,
                    deallocated: true,
                    ..SessionState::default()
                };
                return;
            }
            "discard" if (second == "temp" || second == "temporary") => {
                self.clear("temporary tables")
            }
            "deallocate"
                if second == "all"
                    || (second == "prepare"
                        && words.next().is_some_and(|w| w.eq_ignore_ascii_case("all"))) =>
            {
                self.clear("prepared statements");
                self.deallocated = true;
            }
            "listen" => self.unreplayable = Some("LISTEN"),
            "unlisten" if text.contains('*') => self.clear("LISTEN"),
            "create"
                if matches!(second.as_str(), "temp" | "temporary" | "local" | "global")
                    || has(" temp table")
                    || has(" temporary table") =>
            {
                self.unreplayable = Some("temporary tables");
            }
            "declare" if has("with hold") => self.unreplayable = Some("WITH HOLD cursors"),
            "close" if second == "all" => self.clear("WITH HOLD cursors"),
            "prepare" if second != "transaction" => self.unreplayable = Some("prepared statements"),
            _ => {}
        }
        self.observe_calls(text);
    }

    /// Function calls that change session state.
    fn observe_calls(&mut self, text: &str) {
        let has = |needle: &str| contains_ci(text, needle);
        if has("advisory") {
            if has("pg_advisory_unlock_all") {
                self.clear("session advisory locks");
            } else if (has("pg_advisory_lock") || has("pg_try_advisory_lock")) && !has("_xact_") {
                self.unreplayable = Some("session advisory locks");
            }
        }
        if has("set_config") && !has("true)") {
            // set_config(name, value, false) changes the session in a way a
            // lexer cannot follow.
            self.unreplayable = Some("set_config(..., false)");
        }
    }

    /// Forgets `reason` if it is what made the session unmovable.
    fn clear(&mut self, reason: &'static str) {
        if self.unreplayable == Some(reason) {
            self.unreplayable = None;
        }
    }

    fn record(&mut self, name: &str, text: &str) {
        if self.sets.get(name).is_none() && self.sets.iter().count() >= MAX_SETS {
            self.unreplayable = Some("too many SET statements");
            return;
        }
        self.sets.set(name, text.trim_end_matches(';').trim_end());
        self.generation += 1;
    }
}

/// The parameter a SET or RESET statement targets (`SET LOCAL`, `SET
/// TRANSACTION` and `SET CONSTRAINTS` are transaction-scoped: None).
fn set_effect(text: &str) -> Option<SetEffect> {
    let lower = text.trim_end_matches(';').trim().to_ascii_lowercase();
    let mut words = lower.split_ascii_whitespace();
    let verb = words.next()?;
    let rest: Vec<&str> = words.collect();
    let (set, mut rest) = match verb {
        "set" => (true, &rest[..]),
        "reset" => (false, &rest[..]),
        _ => return None,
    };
    if rest.first() == Some(&"session") && rest.get(1) != Some(&"authorization") {
        rest = &rest[1..];
    }
    let name = match rest {
        [] => return None,
        ["local", ..] | ["transaction", ..] | ["constraints", ..] => return None,
        ["session", "characteristics", ..] => return None,
        ["all"] if !set => return Some(SetEffect::ResetAll),
        ["role", ..] => "role".to_owned(),
        ["session", "authorization", ..] => "session_authorization".to_owned(),
        ["time", "zone", ..] => "timezone".to_owned(),
        ["names", ..] => "client_encoding".to_owned(),
        ["schema", ..] => "search_path".to_owned(),
        ["xml", "option", ..] => "xmloption".to_owned(),
        [first, ..] => first
            .split(['=', '\''])
            .next()
            .unwrap_or(first)
            .trim_matches('"')
            .to_owned(),
    };
    if name.is_empty() {
        return None;
    }
    Some(if set {
        SetEffect::Set(name)
    } else {
        SetEffect::Reset(name)
    })
}

fn starts_with_word(s: &str, word: &str) -> bool {
    s.get(..word.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(word))
        && s[word.len()..].starts_with(|c: char| c.is_ascii_whitespace())
}

/// Whether `hay` contains `needle` (ASCII case-insensitive): candidates
/// are found by the needle's first byte in either case, one vectorised
/// search at a time, instead of comparing at every position.
fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else {
        return true;
    };
    let Some(last_start) = h.len().checked_sub(n.len()) else {
        return false;
    };
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut at = 0;
    while let Some(i) = memchr::memchr2(lo, up, &h[at..=last_start]) {
        let start = at + i;
        if h[start..start + n.len()].eq_ignore_ascii_case(n) {
            return true;
        }
        at = start + 1;
        if at > last_start {
            break;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(stmts: &[&str]) -> SessionState {
        let mut s = SessionState::default();
        for st in stmts {
            s.observe(st, false, false);
        }
        s
    }

    fn sets(s: &SessionState) -> Vec<(String, String)> {
        s.sets
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn statements_skipped_by_may_observe_change_nothing() {
        let mut s = after(&["SET search_path = a", "LISTEN x"]);
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1;;  \n",
            "UPDATE t SET a = 1 WHERE b = 2",
            "  select * from t",
            "INSERT INTO t SELECT $1, $2",
            "/* c */ SET x = 1",
        ] {
            assert!(!SessionState::may_observe(sql.as_bytes()), "{sql}");
            let before = s.clone();
            s.observe(sql, false, false);
            assert_eq!(s, before, "{sql}");
        }
        for sql in [
            "SET x = 1",
            "reset all",
            "SELECT 1; SET x = 1",
            "SELECT 1; ; ",
            "SELECT pg_advisory_lock(1)",
            "DISCARD ALL",
            "select 'é'",
            // Found by the fuzzer: a vertical tab is whitespace to the tracker.
            "\x0b\x0bset_configCsis",
            "SELECT 1; (",
            "SELECT 1;;(",
            "SELECT (1)",
            "a;b",
            "SELECT 1 ;\t; x",
        ] {
            assert!(SessionState::may_observe(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn contains_ci_matches_a_naive_search() {
        let naive = |h: &str, n: &str| {
            h.as_bytes()
                .windows(n.len())
                .any(|w| w.eq_ignore_ascii_case(n.as_bytes()))
        };
        let hays = [
            "",
            "a",
            "set_config",
            "SELECT SET_CONFIG('a', 'b', true)",
            "select set_confi",
            "ssset_configg",
            "pg_advisory_lock(1); pg_ADVISORY_unlock_all()",
            "true)",
            "xtrue )",
            "aaaaaaaaadvisory",
        ];
        for h in hays {
            for n in [
                "set_config",
                "advisory",
                "true)",
                "pg_advisory_unlock_all",
                "a",
                "x",
            ] {
                assert_eq!(contains_ci(h, n), naive(h, n), "{h:?} / {n:?}");
            }
        }
    }

    #[test]
    fn the_last_set_per_parameter_is_kept() {
        let s = after(&[
            "SET search_path = a, b",
            "select 1",
            "set statement_timeout to 5000;",
            "SET search_path TO c",
            "SET LOCAL x = 1",
            "SET TRANSACTION READ ONLY",
            "SET ROLE reader",
            "SET SESSION AUTHORIZATION app",
            "set time zone 'UTC'",
        ]);
        assert_eq!(
            sets(&s),
            vec![
                ("search_path".into(), "SET search_path TO c".into()),
                (
                    "statement_timeout".into(),
                    "set statement_timeout to 5000".into()
                ),
                ("role".into(), "SET ROLE reader".into()),
                (
                    "session_authorization".into(),
                    "SET SESSION AUTHORIZATION app".into()
                ),
                ("timezone".into(), "set time zone 'UTC'".into()),
            ]
        );
        assert_eq!(s.unreplayable, None);
        let s = after(&["SET a.b = 1", "SET c.d=2", "RESET a.b"]);
        assert_eq!(sets(&s), vec![("c.d".into(), "SET c.d=2".into())]);
        assert!(after(&["SET a.b = 1", "RESET ALL"]).sets.is_empty());
        assert!(after(&["SET a.b = 1", "DISCARD ALL"]).sets.is_empty());
        assert!(after(&["DISCARD ALL"]).reset_all);
        let both = after(&["SET a.b = 1; SET c.d = 2;"]);
        assert_eq!(both.sets.iter().count(), 2);
    }

    #[test]
    fn state_that_cannot_move() {
        assert_eq!(
            after(&["CREATE TEMP TABLE t (a int)"]).unreplayable,
            Some("temporary tables")
        );
        assert_eq!(
            after(&["create temporary table t (a int)", "DISCARD TEMP"]).unreplayable,
            None
        );
        assert_eq!(after(&["LISTEN ch"]).unreplayable, Some("LISTEN"));
        assert_eq!(after(&["LISTEN ch", "UNLISTEN *"]).unreplayable, None);
        assert_eq!(
            after(&["SELECT pg_advisory_lock(1)"]).unreplayable,
            Some("session advisory locks")
        );
        assert_eq!(
            after(&[
                "SELECT pg_advisory_lock(1)",
                "SELECT pg_advisory_unlock_all()"
            ])
            .unreplayable,
            None
        );
        assert_eq!(
            after(&["SELECT pg_advisory_xact_lock(1)"]).unreplayable,
            None
        );
        assert_eq!(
            after(&["DECLARE c CURSOR WITH HOLD FOR SELECT 1"]).unreplayable,
            Some("WITH HOLD cursors")
        );
        assert_eq!(
            after(&["PREPARE p AS SELECT 1"]).unreplayable,
            Some("prepared statements")
        );
        assert_eq!(
            after(&["PREPARE p AS SELECT 1", "DEALLOCATE ALL"]).unreplayable,
            None
        );
        assert!(after(&["DEALLOCATE PREPARE ALL"]).deallocated);
        // "deallocate" contains "all": only the word ALL counts.
        assert!(!after(&["DEALLOCATE small"]).deallocated);
        assert!(!after(&["DEALLOCATE pgferry_deallocated"]).deallocated);
        assert_eq!(
            after(&["SELECT set_config('a.b', 'x', false)"]).unreplayable,
            Some("set_config(..., false)")
        );
        assert_eq!(
            after(&["SELECT set_config('a.b', 'x', true)"]).unreplayable,
            None
        );
        assert_eq!(
            after(&["SET a.b = 1; DELETE FROM t"]).unreplayable,
            Some("SET inside a multi-statement query")
        );
        let mut s = SessionState::default();
        s.observe("SET a.b = 1", false, true);
        assert_eq!(s.unreplayable, Some("SET inside a transaction block"));
        let mut s = SessionState::default();
        s.observe("SELECT $1", true, false);
        assert_eq!(s.unreplayable, Some("prepared statements"));
        assert_eq!(after(&["CREATE TABLE t (a int)"]).unreplayable, None);
        assert_eq!(after(&["SELECT 1; LISTEN ch"]).unreplayable, Some("LISTEN"));
        // Not only the first statement of a multi-statement query counts.
        assert_eq!(
            after(&["SELECT 1; SET search_path = pg_catalog"]).unreplayable,
            Some("SET inside a multi-statement query")
        );
        // asyncpg's pool reset: everything cleared, parameters reset.
        let s = after(&[
            "SET work_mem = '1MB'",
            "LISTEN ch",
            "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;",
        ]);
        assert_eq!(s.unreplayable, None);
        assert!(s.reset_all);
        assert!(!s.deallocated, "RESET ALL keeps prepared statements");
        assert!(s.sets.get("work_mem").is_none());
        assert!(after(&["DISCARD ALL"]).deallocated);
        assert_eq!(after(&["SELECT 1; SELECT 2"]).unreplayable, None);
        let mut s = after(&["LISTEN a", "DISCARD ALL"]);
        assert_eq!(s.unreplayable, None);
        s.reset_all = false;
        s.deallocated = false;
        assert_eq!(
            s,
            SessionState {
                generation: 1,
                ..Default::default()
            }
        );
    }
}
