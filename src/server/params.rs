//! Session parameters: what a client wants, what a server connection has, and
//! the one query that brings a server connection in line with a client.

use std::fmt::Write;

/// A small ordered map of GUC names (case-insensitive) to values. Linear
/// search beats hashing for the dozen entries a session has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamSet(Vec<(String, String)>);

impl ParamSet {
    pub const fn new() -> ParamSet {
        ParamSet(Vec::new())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        match self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => {
                if v != value {
                    value.clone_into(v);
                }
            }
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parameters of one server connection.
#[derive(Debug, Clone, Default)]
pub struct ServerParams {
    /// Everything the server reported with ParameterStatus.
    pub reported: ParamSet,
    /// Values pgferry (or a client, seen through ParameterStatus) set on this
    /// connection on top of its startup defaults.
    pub applied: ParamSet,
    /// Session-level SET statements a client ran on this connection (or
    /// pgferry ran for one), by parameter name.
    pub applied_sets: ParamSet,
}

impl ServerParams {
    fn current(&self, name: &str) -> Option<&str> {
        self.applied.get(name).or_else(|| self.reported.get(name))
    }

    /// The query that makes this connection match `desired`, or None when it
    /// already does. Parameters applied for an earlier client that this one
    /// did not ask for are reset to the server's defaults.
    pub fn sync_query(&self, desired: &ParamSet, sets: &ParamSet) -> Option<String> {
        // set_config() takes the value as the server parses a startup or
        // postgresql.conf value: `SET search_path = 'a, b'` would name one
        // schema "a, b", while set_config('search_path', 'a, b', false)
        // gives the list a, b, as `options=-c search_path=a,b` means.
        //
        // The common case first: this connection last served a client with
        // the same parameters and SETs (names are unique per set, so equal
        // sets leave nothing to do).
        if self.applied == *desired && self.applied_sets == *sets {
            return None;
        }
        let mut calls = Vec::new();
        for (name, value) in desired.iter() {
            if self.current(name) != Some(value) {
                calls.push(format!(
                    "set_config({}, {}, false)",
                    quote_literal(&name.to_ascii_lowercase()),
                    quote_literal(value)
                ));
            }
        }
        let mut sql = String::new();
        if !calls.is_empty() {
            let _ = write!(sql, "SELECT {};", calls.join(", "));
        }
        for (name, _) in self.applied.iter() {
            if desired.get(name).is_none() {
                let _ = write!(sql, "RESET {};", quote_ident(name));
            }
        }
        // The client's own SET statements run as the client wrote them, so
        // their meaning (list values, DEFAULT, SET ROLE) is exactly theirs;
        // what an earlier client set and this one did not is reset, so
        // nothing (SET ROLE in particular) leaks between clients.
        for (name, stmt) in sets.iter() {
            if self.applied_sets.get(name) != Some(stmt) {
                let _ = write!(sql, "{stmt};");
            }
        }
        for (name, _) in self.applied_sets.iter() {
            if sets.get(name).is_none() {
                let _ = write!(sql, "RESET {};", reset_target(name));
            }
        }
        (!sql.is_empty()).then_some(sql)
    }

    /// Records that `sync_query(desired)` ran successfully.
    pub fn synced(&mut self, desired: &ParamSet, sets: &ParamSet) {
        self.applied = desired.clone();
        self.applied_sets = sets.clone();
    }
}

/// Reported parameters a client cannot SET (or that follow from something
/// else, like the role): they are never carried from one server connection
/// to another.
const NOT_SETTABLE: &[&str] = &[
    "server_version",
    "server_encoding",
    "integer_datetimes",
    "is_superuser",
    "session_authorization",
    "in_hot_standby",
    "default_transaction_read_only",
    "scram_iterations",
];

/// Whether a parameter the server reported should follow the client.
pub fn follows_client(name: &str) -> bool {
    !NOT_SETTABLE.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// RESET's spelling for a tracked parameter name.
fn reset_target(name: &str) -> String {
    match name {
        "role" => "ROLE".to_owned(),
        "session_authorization" => "SESSION AUTHORIZATION".to_owned(),
        other => quote_ident(other),
    }
}

pub fn quote_ident(name: &str) -> String {
    // GUC names are case-insensitive; lower-case them so quoting keeps them valid.
    let lower = name.to_ascii_lowercase();
    if lower
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    {
        lower
    } else {
        format!("\"{}\"", lower.replace('"', "\"\""))
    }
}

pub fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> ParamSet {
        let mut p = ParamSet::new();
        for (k, v) in pairs {
            p.set(k, v);
        }
        p
    }

    #[test]
    fn no_query_when_in_line() {
        let s = ServerParams {
            reported: set(&[("client_encoding", "UTF8"), ("TimeZone", "UTC")]),
            applied: ParamSet::new(),
            applied_sets: ParamSet::new(),
        };
        assert_eq!(
            s.sync_query(&set(&[("client_encoding", "UTF8")]), &ParamSet::new()),
            None
        );
        assert_eq!(
            s.sync_query(&set(&[("timezone", "UTC")]), &ParamSet::new()),
            None
        );
    }

    #[test]
    fn sets_differences_and_resets_leftovers() {
        let s = ServerParams {
            reported: set(&[("application_name", "")]),
            applied: set(&[("search_path", "a"), ("application_name", "old")]),
            applied_sets: set(&[("role", "SET ROLE x"), ("work_mem", "SET work_mem = '1MB'")]),
        };
        let sets = set(&[("work_mem", "SET work_mem = '2MB'")]);
        let q = s
            .sync_query(
                &set(&[("application_name", "it's"), ("TimeZone", "UTC")]),
                &sets,
            )
            .unwrap();
        assert_eq!(
            q,
            "SELECT set_config('application_name', 'it''s', false), set_config('timezone', 'UTC', false);\
             RESET search_path;SET work_mem = '2MB';RESET ROLE;"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("DateStyle"), "datestyle");
        assert_eq!(quote_ident("my-guc"), "\"my-guc\"");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}
