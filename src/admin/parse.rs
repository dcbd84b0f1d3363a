//! Admin statements: `PAUSE [db]`, `RESUME [db]`, `RECONNECT [db]`,
//! `SHOW what`. Keywords are case-insensitive; a trailing `;` is fine.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Pause(Option<String>),
    Resume(Option<String>),
    Reconnect(Option<String>),
    /// The SHOW subject, lower-cased (e.g. "nodes").
    Show(String),
    Empty,
}

pub fn parse(sql: &str) -> Result<Command, String> {
    let text = sql.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let Some((verb, args)) = words.split_first() else {
        return Ok(Command::Empty);
    };
    let one_db = |args: &[&str]| -> Result<Option<String>, String> {
        match args {
            [] => Ok(None),
            [db] if valid_name(db) => Ok(Some(unquote(db))),
            _ => Err(format!("usage: {} [database]", verb.to_ascii_uppercase())),
        }
    };
    match verb.to_ascii_lowercase().as_str() {
        "pause" => one_db(args).map(Command::Pause),
        "resume" => one_db(args).map(Command::Resume),
        "reconnect" => one_db(args).map(Command::Reconnect),
        "show" => match args {
            [what] => Ok(Command::Show(what.to_ascii_lowercase())),
            _ => Err("usage: SHOW what".to_owned()),
        },
        _ => Err(format!(
            "unknown admin command \"{}\" (try PAUSE, RESUME, RECONNECT, SHOW VERSION, SHOW NODES, SHOW FAILOVERS)",
            verb.chars().take(64).collect::<String>()
        )),
    }
}

fn unquote(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
        .to_owned()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.contains(';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse("PAUSE"), Ok(Command::Pause(None)));
        assert_eq!(parse("pause app;"), Ok(Command::Pause(Some("app".into()))));
        assert_eq!(
            parse(" resume \"App\" "),
            Ok(Command::Resume(Some("App".into())))
        );
        assert_eq!(parse("RECONNECT"), Ok(Command::Reconnect(None)));
        assert_eq!(parse("show Nodes"), Ok(Command::Show("nodes".into())));
        assert_eq!(parse("  ;"), Ok(Command::Empty));
        assert!(parse("PAUSE a b").is_err());
        assert!(parse("DROP TABLE x").is_err());
        assert!(parse("SHOW").is_err());
    }
}
