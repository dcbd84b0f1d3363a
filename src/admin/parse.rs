//! Admin statements: `PAUSE [db]`, `RESUME [db]`, `RECONNECT [db]`,
//! `KILL db`, `KILL_CLIENT id`, `SET key = value`, `SHOW what`. Keywords
//! are case-insensitive; a trailing `;` is fine.
//!
//! Adding a command: a variant here, a verb in [`parse`], a line in
//! `super::run`, and whether it only reads in [`Command::read_only`].

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Pause(Option<String>),
    Resume(Option<String>),
    Reconnect(Option<String>),
    /// Drop every client and server connection of a database.
    Kill(String),
    /// Close one client (its id in SHOW CLIENTS).
    KillClient(u64),
    /// Change a run-time setting.
    Set {
        key: String,
        value: String,
    },
    /// The SHOW subject, lower-cased (e.g. "nodes").
    Show(String),
    /// Re-read the config file.
    Reload,
    /// Exit now (`SHUTDOWN`), or once every client has left
    /// (`SHUTDOWN WAIT_FOR_CLIENTS`).
    Shutdown {
        wait_for_clients: bool,
    },
    Empty,
}

impl Command {
    /// Whether `stats_users` may run it.
    pub fn read_only(&self) -> bool {
        matches!(self, Command::Show(_) | Command::Empty)
    }
}

const COMMANDS: &str = "PAUSE, RESUME, RECONNECT, KILL, KILL_CLIENT, SET, SHOW, RELOAD, SHUTDOWN";

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
        "kill" => match one_db(args)? {
            Some(db) => Ok(Command::Kill(db)),
            None => Err("usage: KILL database".to_owned()),
        },
        "kill_client" => match args {
            [id] => id
                .parse()
                .map(Command::KillClient)
                .map_err(|_| "usage: KILL_CLIENT id (the id column of SHOW CLIENTS)".to_owned()),
            _ => Err("usage: KILL_CLIENT id (the id column of SHOW CLIENTS)".to_owned()),
        },
        "set" => parse_set(text[verb.len()..].trim()),
        "reload" if args.is_empty() => Ok(Command::Reload),
        "reload" => Err("usage: RELOAD".to_owned()),
        "shutdown" => match args {
            [] => Ok(Command::Shutdown {
                wait_for_clients: false,
            }),
            [w] if w.eq_ignore_ascii_case("wait_for_clients") => Ok(Command::Shutdown {
                wait_for_clients: true,
            }),
            _ => Err("usage: SHUTDOWN [WAIT_FOR_CLIENTS]".to_owned()),
        },
        "show" => match args {
            [what] => Ok(Command::Show(what.to_ascii_lowercase())),
            _ => Err("usage: SHOW what".to_owned()),
        },
        _ => Err(format!(
            "unknown admin command \"{}\" (try {COMMANDS})",
            verb.chars().take(64).collect::<String>()
        )),
    }
}

/// `key = value` or `key TO value`; the value may be quoted with '.
fn parse_set(rest: &str) -> Result<Command, String> {
    const USAGE: &str = "usage: SET key = value";
    let (key, value) = match rest.split_once('=') {
        Some((k, v)) => (k.trim(), v.trim()),
        None => {
            let mut parts = rest.splitn(3, char::is_whitespace);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(k), Some(to), Some(v)) if to.eq_ignore_ascii_case("to") => (k, v.trim()),
                _ => return Err(USAGE.to_owned()),
            }
        }
    };
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    if key.is_empty() || value.is_empty() || !valid_name(key) {
        return Err(USAGE.to_owned());
    }
    Ok(Command::Set {
        key: key.to_ascii_lowercase(),
        value: value.to_owned(),
    })
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
        assert_eq!(parse("reload;"), Ok(Command::Reload));
        assert!(parse("RELOAD now").is_err());
        assert_eq!(
            parse("SHUTDOWN"),
            Ok(Command::Shutdown {
                wait_for_clients: false
            })
        );
        assert_eq!(
            parse("shutdown wait_for_clients"),
            Ok(Command::Shutdown {
                wait_for_clients: true
            })
        );
        assert!(parse("SHUTDOWN soon").is_err());
    }

    #[test]
    fn kill_and_set() {
        assert_eq!(parse("KILL app"), Ok(Command::Kill("app".into())));
        assert!(parse("KILL").is_err());
        assert_eq!(parse("kill_client 42;"), Ok(Command::KillClient(42)));
        assert!(parse("KILL_CLIENT x").is_err());
        assert!(parse("KILL_CLIENT").is_err());
        let set = |k: &str, v: &str| {
            Ok(Command::Set {
                key: k.into(),
                value: v.into(),
            })
        };
        assert_eq!(
            parse("SET query_wait_timeout = '5s'"),
            set("query_wait_timeout", "5s")
        );
        assert_eq!(
            parse("set Default_Pool_Size=7"),
            set("default_pool_size", "7")
        );
        assert_eq!(
            parse("SET default_pool_size TO 3"),
            set("default_pool_size", "3")
        );
        assert!(parse("SET x").is_err());
        assert!(parse("SET = 1").is_err());
        assert!(parse("SET a =").is_err());
    }

    #[test]
    fn read_only() {
        assert!(Command::Show("pools".into()).read_only());
        assert!(!Command::Pause(None).read_only());
        assert!(!Command::KillClient(1).read_only());
    }
}
