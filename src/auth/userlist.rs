//! PgBouncer's `userlist.txt` format, read by `auth_file`.
//!
//! One user per line: `"name" "password"`, both in double quotes, a doubled
//! quote (`""`) standing for a quote inside. The password is plaintext, an
//! `md5<32 hex>` hash, or a `SCRAM-SHA-256$...` secret. Lines starting with
//! `;` or `#` are comments; anything after the second quoted field is
//! ignored, as PgBouncer does. Lines that do not parse are skipped and
//! reported by number (never with their text: it may hold a password).

use std::fmt;
use std::path::Path;

use super::secret::ScramSecret;

/// One parsed line.
#[derive(Clone, PartialEq, Eq)]
pub struct UserlistEntry {
    pub name: String,
    pub password: String,
}

/// Prints the name only: the password is a secret or password equivalent.
impl fmt::Debug for UserlistEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserlistEntry")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A line that was skipped, with why. The reason never quotes the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    pub reason: &'static str,
}

/// The users of a userlist file, in file order (a later duplicate wins when
/// they are put in a map, as in PgBouncer), and the lines that were skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Userlist {
    pub entries: Vec<UserlistEntry>,
    pub bad_lines: Vec<BadLine>,
}

/// Reads and parses the file at `path`, logging each skipped line by number.
pub fn load(path: &Path) -> std::io::Result<Userlist> {
    let text = std::fs::read_to_string(path)?;
    let list = parse(&text);
    for bad in &list.bad_lines {
        tracing::warn!(
            file = %path.display(),
            line = bad.line,
            reason = bad.reason,
            "auth_file: skipping line"
        );
    }
    tracing::info!(file = %path.display(), users = list.entries.len(), "auth_file loaded");
    Ok(list)
}

pub fn parse(text: &str) -> Userlist {
    let mut list = Userlist::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(entry) => list.entries.push(entry),
            Err(reason) => list.bad_lines.push(BadLine {
                line: i + 1,
                reason,
            }),
        }
    }
    list
}

fn parse_line(line: &str) -> Result<UserlistEntry, &'static str> {
    let (name, rest) = quoted(line).ok_or("expected a quoted user name")?;
    if name.is_empty() {
        return Err("empty user name");
    }
    let rest = rest.trim_start();
    let (password, _trailing) = quoted(rest).ok_or("expected a quoted password")?;
    if password.starts_with("SCRAM-SHA-256$") && ScramSecret::parse(&password).is_err() {
        return Err("malformed SCRAM-SHA-256 secret");
    }
    Ok(UserlistEntry { name, password })
}

/// Reads one `"..."` field at the start of `s`; returns it unescaped and the
/// text after its closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        // A quote either closes the field or, doubled, stands for itself.
        let after = body.get(i + 1..)?;
        if after.starts_with('"') {
            out.push('"');
            chars.next();
        } else {
            return Some((out, after));
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn entry(name: &str, password: &str) -> UserlistEntry {
        UserlistEntry {
            name: name.into(),
            password: password.into(),
        }
    }

    #[test]
    fn plain_md5_and_scram_lines() {
        let scram = ScramSecret::generate("pw").to_string_secret();
        let text = format!(
            "\"alice\" \"secret\"\n\
             \"bob\" \"md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n\
             \"carol\"\t\"{scram}\"\n"
        );
        let list = parse(&text);
        assert_eq!(
            list.entries,
            vec![
                entry("alice", "secret"),
                entry("bob", "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                entry("carol", &scram),
            ]
        );
        assert!(list.bad_lines.is_empty());
    }

    #[test]
    fn doubled_quotes_escape_a_quote() {
        let list = parse(r#""we""ird" "pa""ss"" word""#);
        assert_eq!(list.entries, vec![entry("we\"ird", "pa\"ss\" word")]);
        let list = parse(r#""""" """""#);
        assert_eq!(list.entries, vec![entry("\"", "\"")]);
    }

    #[test]
    fn comments_blank_lines_and_trailing_text() {
        let text = "; a comment\n# another \"x\" \"y\"\n\n   \n  \"u\" \"p\"  ignored stuff\r\n";
        let list = parse(text);
        assert_eq!(list.entries, vec![entry("u", "p")]);
        assert!(list.bad_lines.is_empty());
    }

    #[test]
    fn bad_lines_are_reported_by_number_without_text() {
        let text = "\"ok\" \"pw\"\n\
                    garbage line\n\
                    \"unterminated \"pw\"\n\
                    \"nopass\"\n\
                    \"\" \"pw\"\n\
                    \"half\" \"open\n\
                    \"s\" \"SCRAM-SHA-256$4096:bad\"\n\
                    \"good\" \"pw2\"\n";
        let list = parse(text);
        assert_eq!(list.entries, vec![entry("ok", "pw"), entry("good", "pw2")]);
        let lines: Vec<usize> = list.bad_lines.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7]);
        let dbg = format!("{:?}", list.bad_lines);
        assert!(!dbg.contains("pw"), "{dbg}");
        assert!(!dbg.contains("4096"), "{dbg}");
    }

    #[test]
    fn debug_redacts_password() {
        let list = parse("\"alice\" \"hunter2\"");
        let dbg = format!("{list:?}");
        assert!(dbg.contains("alice"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn never_panics_on_random_input() {
        let alphabet = "\"\" \t;#a\u{e9}\n\r";
        let chars: Vec<char> = alphabet.chars().collect();
        for _ in 0..5_000 {
            let len = rand::random::<usize>() % 40;
            let s: String = (0..len)
                .map(|_| chars[rand::random::<usize>() % chars.len()])
                .collect();
            let _ = parse(&s);
        }
    }
}
