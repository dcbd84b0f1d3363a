//! Session-mode state that can follow a client to a new server connection:
//! its SET statements, in order. State that cannot follow (temporary tables,
//! session advisory locks, LISTEN, WITH HOLD cursors, prepared statements)
//! is noted with its reason, so a client that loses its server while
//! holding it gets one clear error instead of a silently different session.
//!
//! This looks only at the first words of each statement; it costs nothing
//! in transaction and statement modes, where it is not used.

/// At most this many SET statements are kept; beyond it the session is
/// treated as not replayable (something is setting things in a loop).
const MAX_SETS: usize = 256;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// SET / RESET statements to run again, oldest first.
    pub sets: Vec<String>,
    /// Why the session cannot be restored elsewhere, if it cannot.
    pub unreplayable: Option<&'static str>,
}

impl SessionState {
    /// Notes what one statement (a Query's text, or a Parse's) does to
    /// session state. `named` is true for a Parse of a named statement.
    pub fn observe(&mut self, sql: &str, named: bool) {
        if named {
            self.unreplayable = Some("prepared statements");
        }
        // A query made only of SET/RESET statements is recorded statement by
        // statement (a naive split: a ';' inside a quoted value makes a part
        // that is not a SET, and then the whole query counts as mixed).
        let parts: Vec<&str> = sql
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.len() > 1
            && parts
                .iter()
                .all(|p| starts_with_word(p, "set") || starts_with_word(p, "reset"))
        {
            for part in parts {
                self.observe(part, false);
            }
            return;
        }
        let text = sql.trim_start();
        let mut words = text
            .split(|c: char| c.is_ascii_whitespace() || c == ';' || c == '(')
            .filter(|w| !w.is_empty());
        let first = words.next().unwrap_or("").to_ascii_lowercase();
        let second = words.next().unwrap_or("").to_ascii_lowercase();
        let lower_has = |needle: &str| contains_ci(text, needle);
        // Several statements in one Query cannot be replayed safely (the
        // others may write); their SET parts are not recorded.
        let single = !text.trim_end().trim_end_matches(';').contains(';');
        match first.as_str() {
            "set"
                if !matches!(second.as_str(), "local" | "transaction" | "constraints")
                    && !lower_has("session characteristics") =>
            {
                if single {
                    self.record(text);
                } else {
                    self.unreplayable = Some("SET inside a multi-statement query");
                }
            }
            "reset" if second == "all" => self.sets.clear(),
            "reset" => self.record(text),
            "discard" if second == "all" => *self = SessionState::default(),
            "discard"
                if (second == "temp" || second == "temporary")
                    && self.unreplayable == Some("temporary tables") =>
            {
                self.unreplayable = None;
            }
            "listen" => self.unreplayable = Some("LISTEN"),
            "unlisten" if text.contains('*') && self.unreplayable == Some("LISTEN") => {
                self.unreplayable = None;
            }
            "create"
                if matches!(second.as_str(), "temp" | "temporary" | "local" | "global")
                    || lower_has(" temp table")
                    || lower_has(" temporary table") =>
            {
                self.unreplayable = Some("temporary tables");
            }
            "declare" if lower_has("with hold") => self.unreplayable = Some("WITH HOLD cursors"),
            "prepare" if second != "transaction" => self.unreplayable = Some("prepared statements"),
            _ => {}
        }
        if (lower_has("pg_advisory_lock") || lower_has("pg_try_advisory_lock"))
            && !lower_has("_xact_")
        {
            self.unreplayable = Some("session advisory locks");
        }
        if lower_has("set_config") && !single {
            self.unreplayable = Some("set_config in a multi-statement query");
        } else if lower_has("set_config") {
            // set_config(name, value, false) changes the session; replay the
            // statement itself (it has no other effect than a SELECT).
            self.record(text);
        }
    }

    fn record(&mut self, text: &str) {
        if self.sets.len() >= MAX_SETS {
            self.unreplayable = Some("too many SET statements");
            return;
        }
        self.sets.push(text.trim().trim_end_matches(';').to_owned());
    }
}

fn starts_with_word(s: &str, word: &str) -> bool {
    s.get(..word.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(word))
        && s[word.len()..].starts_with(|c: char| c.is_ascii_whitespace())
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(stmts: &[&str]) -> SessionState {
        let mut s = SessionState::default();
        for st in stmts {
            s.observe(st, false);
        }
        s
    }

    #[test]
    fn sets_are_recorded_in_order() {
        let s = after(&[
            "SET search_path = a, b",
            "select 1",
            "set statement_timeout to 5000;",
            "SET LOCAL x = 1",
            "SET TRANSACTION READ ONLY",
        ]);
        assert_eq!(
            s.sets,
            vec!["SET search_path = a, b", "set statement_timeout to 5000"]
        );
        assert_eq!(s.unreplayable, None);
        let s = after(&["SET a.b = 1", "RESET ALL", "RESET search_path"]);
        assert_eq!(s.sets, vec!["RESET search_path"]);
        assert_eq!(
            after(&["SET a.b = 1", "DISCARD ALL"]),
            SessionState::default()
        );
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
            after(&["SET a.b = 1; DELETE FROM t"]).unreplayable,
            Some("SET inside a multi-statement query")
        );
        let both = after(&["SET a.b = 1; SET c.d = 2;"]);
        assert_eq!(both.sets, vec!["SET a.b = 1", "SET c.d = 2"]);
        assert_eq!(both.unreplayable, None);
        let mut s = SessionState::default();
        s.observe("SELECT $1", true);
        assert_eq!(s.unreplayable, Some("prepared statements"));
        assert_eq!(after(&["CREATE TABLE t (a int)"]).unreplayable, None);
    }
}
