//! A walker over a parsed `toml::Table` that collects every problem.
//!
//! Deserializing with serde stops at the first error, which turns fixing a config into a loop of
//! edit-and-retry. Instead each section is consumed key by key: an accessor removes its key, records
//! a problem (with the full key path) if the value is malformed, and returns `None` so the caller
//! falls back to the default and carries on. `finish` then reports whatever is left over as unknown,
//! so a misspelt key is an error rather than a silently ignored setting.

use std::cell::RefCell;
use std::time::Duration;

use toml::{Table, Value};

use super::parse::{parse_duration, parse_size};
use super::Problem;

/// The problems found so far, shared by a walker and all walkers nested inside it.
///
/// A `RefCell` rather than `&mut` so that child walkers (one per `[[users]]` entry, say) can live
/// side by side without borrowing their parent.
#[derive(Default)]
pub(crate) struct Problems(RefCell<Vec<Problem>>);

impl Problems {
    pub(crate) fn report(&self, path: impl Into<String>, message: impl Into<String>) {
        self.0.borrow_mut().push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn into_vec(self) -> Vec<Problem> {
        self.0.into_inner()
    }
}

/// An enum spelled in the config as one of a fixed set of strings.
pub(crate) trait Keyword: Copy + 'static {
    const CHOICES: &'static [(&'static str, Self)];
}

pub(crate) fn keyword_from_str<K: Keyword>(s: &str) -> Result<K, String> {
    K::CHOICES
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, k)| *k)
        .ok_or_else(|| expected_one_of(K::CHOICES.iter().map(|(name, _)| *name), s))
}

pub(crate) fn keyword_name<K: Keyword + PartialEq>(k: K) -> &'static str {
    K::CHOICES
        .iter()
        .find(|(_, v)| *v == k)
        .map_or("?", |(name, _)| *name)
}

fn expected_one_of<'a>(names: impl Iterator<Item = &'a str>, got: &str) -> String {
    let names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    format!("expected one of {}, got {got:?}", names.join(", "))
}

/// Appends `key` to a dotted path, quoting it the way TOML would need it quoted.
pub(crate) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn type_error(expected: &str, got: &Value) -> String {
    format!("expected {expected}, got {}", kind(got))
}

fn expect_string(value: Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(type_error("a string", &other)),
    }
}

/// One TOML table being consumed.
pub(crate) struct Walker<'p> {
    path: String,
    table: Table,
    /// Every key asked for, so `finish` can suggest one for a misspelt key.
    known: Vec<&'static str>,
    problems: &'p Problems,
}

impl<'p> Walker<'p> {
    pub(crate) fn new(path: String, table: Table, problems: &'p Problems) -> Self {
        Walker {
            path,
            table,
            known: Vec::new(),
            problems,
        }
    }

    /// The key path of this table, e.g. `databases.app` or `users[2]`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn problems(&self) -> &'p Problems {
        self.problems
    }

    /// Records a problem with the key `key` of this table.
    pub(crate) fn report(&self, key: &str, message: impl Into<String>) {
        self.problems.report(join(&self.path, key), message);
    }

    pub(crate) fn peek(&self, key: &str) -> Option<&Value> {
        self.table.get(key)
    }

    /// Reports `key` as missing if it is absent; returns whether it is present.
    pub(crate) fn require(&mut self, key: &'static str) -> bool {
        self.known.push(key);
        let present = self.table.contains_key(key);
        if !present {
            self.report(key, "missing required key");
        }
        present
    }

    pub(crate) fn take(&mut self, key: &'static str) -> Option<Value> {
        self.known.push(key);
        self.table.remove(key)
    }

    /// Takes `key` and converts it; a failed conversion is reported and yields `None`.
    pub(crate) fn take_with<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.take(key)?;
        convert(value)
            .map_err(|message| self.report(key, message))
            .ok()
    }

    pub(crate) fn string(&mut self, key: &'static str) -> Option<String> {
        self.take_with(key, expect_string)
    }

    /// A string value run through `parse`, whose error message becomes the problem.
    pub(crate) fn parsed<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.take_with(key, |v| parse(&expect_string(v)?))
    }

    /// Durations are strings with a unit: a bare number would leave the unit to guesswork.
    pub(crate) fn duration(&mut self, key: &'static str) -> Option<Duration> {
        self.take_with(key, |v| match v {
            Value::String(s) => parse_duration(&s),
            other => Err(type_error("a string with a unit, like \"30s\"", &other)),
        })
    }

    pub(crate) fn keyword<K: Keyword>(&mut self, key: &'static str) -> Option<K> {
        self.parsed(key, keyword_from_str::<K>)
    }

    /// A string restricted to `choices`, kept as a string.
    pub(crate) fn one_of(&mut self, key: &'static str, choices: &[&str]) -> Option<String> {
        self.parsed(key, |s| {
            if choices.contains(&s) {
                Ok(s.to_owned())
            } else {
                Err(expected_one_of(choices.iter().copied(), s))
            }
        })
    }

    pub(crate) fn bool(&mut self, key: &'static str) -> Option<bool> {
        self.take_with(key, |v| match v {
            Value::Boolean(b) => Ok(b),
            other => Err(type_error("a boolean (true or false)", &other)),
        })
    }

    /// A non-negative integer that must be at least `min`.
    pub(crate) fn count(&mut self, key: &'static str, min: usize) -> Option<usize> {
        self.take_with(key, |v| match v {
            Value::Integer(n) => match usize::try_from(n) {
                Ok(n) if n >= min => Ok(n),
                _ => Err(format!("must be at least {min}, got {n}")),
            },
            other => Err(type_error("an integer", &other)),
        })
    }

    /// An integer in `min..=max`.
    pub(crate) fn int_in(&mut self, key: &'static str, min: i64, max: i64) -> Option<i64> {
        self.take_with(key, |v| match v {
            Value::Integer(n) if (min..=max).contains(&n) => Ok(n),
            Value::Integer(n) => Err(format!("must be between {min} and {max}, got {n}")),
            other => Err(type_error("an integer", &other)),
        })
    }

    /// A byte count, either an integer or a string with a unit like "16MB".
    pub(crate) fn byte_size(&mut self, key: &'static str, min: u64, max: u64) -> Option<usize> {
        self.take_with(key, |v| {
            let bytes = match v {
                Value::Integer(n) => u64::try_from(n).map_err(|_| format!("invalid size {n}"))?,
                Value::String(s) => parse_size(&s)?,
                other => return Err(type_error("an integer or a string like \"16MB\"", &other)),
            };
            if !(min..=max).contains(&bytes) {
                return Err(format!(
                    "must be between {min} and {max} bytes, got {bytes}"
                ));
            }
            usize::try_from(bytes).map_err(|_| format!("{bytes} bytes is too large"))
        })
    }

    /// A nested table; `None` if absent or not a table.
    pub(crate) fn table(&mut self, key: &'static str) -> Option<Walker<'p>> {
        let path = join(&self.path, key);
        let problems = self.problems;
        self.take_with(key, |v| match v {
            Value::Table(t) => Ok(Walker::new(path, t, problems)),
            other => Err(type_error("a table", &other)),
        })
    }

    /// An array of tables (`[[key]]`), one walker per entry, with paths like `key[2]`.
    pub(crate) fn array_of_tables(&mut self, key: &'static str) -> Option<Vec<Walker<'p>>> {
        let path = join(&self.path, key);
        let problems = self.problems;
        let items = self.take_with(key, |v| match v {
            Value::Array(items) => Ok(items),
            other => Err(type_error(
                &format!("an array of tables ([[{key}]])"),
                &other,
            )),
        })?;
        let mut walkers = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("{path}[{i}]");
            match item {
                Value::Table(t) => walkers.push(Walker::new(path, t, problems)),
                other => problems.report(path, type_error("a table", &other)),
            }
        }
        Some(walkers)
    }

    /// An array of strings, each run through `parse`. Returns the valid items with their paths
    /// (e.g. `hosts[1]`) so the caller can report cross-item problems such as duplicates.
    pub(crate) fn list<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<(String, T)>> {
        let path = join(&self.path, key);
        let items = self.take_with(key, |v| match v {
            Value::Array(items) => Ok(items),
            other => Err(type_error("an array of strings", &other)),
        })?;
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("{path}[{i}]");
            match expect_string(item).and_then(|s| parse(&s)) {
                Ok(value) => parsed.push((path, value)),
                Err(message) => self.problems.report(path, message),
            }
        }
        Some(parsed)
    }

    /// Drains a table whose keys are names chosen by the user (like `[databases.NAME]`);
    /// every value must itself be a table.
    pub(crate) fn named_tables(&mut self, what: &str) -> Vec<(String, Walker<'p>)> {
        let mut out = Vec::new();
        for (name, value) in std::mem::take(&mut self.table) {
            let path = join(&self.path, &name);
            match value {
                Value::Table(t) => out.push((name, Walker::new(path, t, self.problems))),
                other => self
                    .problems
                    .report(path, type_error(&format!("a table ({what})"), &other)),
            }
        }
        out
    }

    /// Drains a table whose keys are chosen by the user, whatever their values:
    /// (key, its path for problems, value); the caller checks them.
    pub(crate) fn named_values(&mut self) -> Vec<(String, String, Value)> {
        std::mem::take(&mut self.table)
            .into_iter()
            .map(|(k, v)| {
                let path = join(&self.path, &k);
                (k, path, v)
            })
            .collect()
    }

    /// Reports every key nobody asked for.
    pub(crate) fn finish(self) {
        for key in self.table.keys() {
            let message = match suggest(key, &self.known) {
                Some(known) => format!("unknown key (did you mean {known:?}?)"),
                None => "unknown key".to_owned(),
            };
            self.report(key, message);
        }
    }
}

/// The known key closest to a misspelt one, if it is close enough to be a plausible typo.
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
