use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::parse::{parse_host, parse_listen, parse_size};
use super::*;

const EXAMPLE: &str = include_str!("../../config/pgferry.toml");

/// A real SCRAM secret (password "reporting-secret"), as Postgres would store it.
const SCRAM: &str = "SCRAM-SHA-256$4096:cGdmZXJyeS1leGFtcGxlIQ==$\
    f0KxauqiB4dlKIK5oTDo2lCFe7OyoLsXSr3fR5Lq/nM=:LfLAfRXRD4VbTMj8pbekYwdA7lQPvI362RRdVFjSuD0=";
const MD5: &str = "md5f2a3ec4bd3e4e7bd1a0ab5c5bd5f1e1c";

const ONE_USER: &str = "[[users]]\nname = \"app\"\npassword = \"secret\"\n";

fn parse_ok(text: &str) -> Config {
    match Config::parse(text) {
        Ok(config) => config,
        Err(e) => panic!("expected the config to parse, got:\n{e}\n--- config ---\n{text}"),
    }
}

/// The problems reported for `text`, as `path: message` strings.
fn problems(text: &str) -> Vec<String> {
    match Config::parse(text) {
        Err(ConfigError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected problems, got {other:?}\n--- config ---\n{text}"),
    }
}

/// The problems for `text` with one valid user appended, so only `text`'s problems show.
fn problems_with_user(text: &str) -> Vec<String> {
    problems(&format!("{text}\n{ONE_USER}"))
}

fn host(host: &str, port: u16) -> HostAddr {
    HostAddr {
        host: host.to_owned(),
        port,
    }
}

#[test]
fn full_example_parses_to_expected_values() {
    let text = format!(
        r#"
        [proxy]
        listen = "[::1]:7432"
        pool_mode = "session"
        default_pool_size = 7
        max_client_conn = 500
        auth_method = "md5"
        query_wait_timeout = "90s"
        client_login_timeout = "1.5s"
        server_connect_timeout = "250ms"
        server_reset_query = ""
        max_message_size = "16MB"
        workers = 4
        monitor_user = "monitor"
        tcp_keepalive = false
        health_interval = "2s"
        health_suspect_interval = "100ms"
        health_timeout = "1s"
        health_down_after = 5
        health_up_after = 4
        route_deny_functions = ["nextval", "Audit.Log"]
        route_allow_functions = ["lower"]
        route = "auto"
        max_replica_lag = "500ms"
        max_replica_lag_bytes = "1MB"
        replica_fallback = "error"
        read_your_writes = false
        failover_timeout = "5s"
        admin_users = ["monitor"]
        pause_timeout = "7s"
        pin_policy = "error"
        max_prepared_statements = 50

        [log]
        level = "debug"
        format = "json"

        [[users]]
        name = "app"
        password = "{MD5}"
        pool_mode = "statement"
        pool_size = 3

        [[users]]
        name = "monitor"
        password = "hunter2"

        [[users]]
        name = "reporting"
        password = "{SCRAM}"

        [[users]]
        name = "nopass"

        [databases.app]
        hosts = ["10.0.0.1:5433", "[fe80::1]", "db-3.example.com"]
        dbname = "app_prod"
        pool_size = 50
        pool_mode = "transaction"
        route = "replica"
        max_replica_lag = "3s"

        [databases.other]
        hosts = ["localhost"]
        "#
    );
    let proxy_routing = RoutingConfig {
        route: Route::Auto,
        max_replica_lag: Duration::from_millis(500),
        max_replica_lag_bytes: Some(1024 * 1024),
        replica_fallback: ReplicaFallback::Error,
        read_your_writes: false,
        failover_timeout: Duration::from_secs(5),
    };
    let expected = Config {
        proxy: ProxyConfig {
            listen: "[::1]:7432".parse().unwrap(),
            pool_mode: PoolMode::Session,
            default_pool_size: 7,
            max_client_conn: 500,
            auth_method: AuthMethod::Md5,
            query_wait_timeout: Duration::from_secs(90),
            client_login_timeout: Duration::from_millis(1500),
            server_connect_timeout: Duration::from_millis(250),
            server_reset_query: String::new(),
            max_message_size: 16 * 1024 * 1024,
            workers: 4,
            monitor_user: Some("monitor".to_owned()),
            tcp_keepalive: false,
            health_interval: Duration::from_secs(2),
            health_suspect_interval: Duration::from_millis(100),
            health_timeout: Duration::from_secs(1),
            health_down_after: 5,
            health_up_after: 4,
            route_deny_functions: Some(vec!["nextval".to_owned(), "audit.log".to_owned()]),
            route_allow_functions: Some(vec!["lower".to_owned()]),
            admin_users: vec!["monitor".to_owned()],
            stats_users: Vec::new(),
            metrics_listen: None,
            pause_timeout: Duration::from_secs(7),
            pin_policy: PinPolicy::Error,
            max_prepared_statements: 50,
            routing: proxy_routing.clone(),
            // Keys added later have tests of their own.
            ..ProxyConfig::default()
        },
        log: LogConfig {
            level: "debug".to_owned(),
            format: LogFormat::Json,
            ..LogConfig::default()
        },
        users: vec![
            UserConfig {
                name: "app".to_owned(),
                password: Some(Password::Md5(MD5.to_owned())),
                pool_mode: Some(PoolMode::Statement),
                pool_size: Some(3),
                max_user_connections: None,
            },
            UserConfig {
                name: "monitor".to_owned(),
                password: Some(Password::Plain("hunter2".to_owned())),
                pool_mode: None,
                pool_size: None,
                max_user_connections: None,
            },
            UserConfig {
                name: "reporting".to_owned(),
                password: Some(Password::Scram(SCRAM.to_owned())),
                pool_mode: None,
                pool_size: None,
                max_user_connections: None,
            },
            UserConfig {
                name: "nopass".to_owned(),
                password: None,
                pool_mode: None,
                pool_size: None,
                max_user_connections: None,
            },
        ],
        databases: BTreeMap::from([
            (
                "app".to_owned(),
                DatabaseConfig {
                    hosts: vec![
                        host("10.0.0.1", 5433),
                        host("fe80::1", 5432),
                        host("db-3.example.com", 5432),
                    ],
                    dbname: "app_prod".to_owned(),
                    pool_size: Some(50),
                    pool_mode: Some(PoolMode::Transaction),
                    max_db_connections: None,
                    routing: RoutingConfig {
                        route: Route::Replica,
                        max_replica_lag: Duration::from_secs(3),
                        ..proxy_routing.clone()
                    },
                },
            ),
            (
                "other".to_owned(),
                DatabaseConfig {
                    hosts: vec![host("localhost", 5432)],
                    dbname: "other".to_owned(),
                    pool_size: None,
                    pool_mode: None,
                    max_db_connections: None,
                    routing: proxy_routing.clone(),
                },
            ),
        ]),
        tls: Default::default(),
        hba: Vec::new(),
        peers: BTreeMap::new(),
    };
    assert_eq!(parse_ok(&text), expected);
}

#[test]
fn missing_keys_take_their_defaults() {
    let config = parse_ok(ONE_USER);
    let proxy = &config.proxy;
    assert_eq!(
        proxy.listen,
        "127.0.0.1:6432".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(proxy.pool_mode, PoolMode::Transaction);
    assert_eq!(proxy.default_pool_size, 20);
    assert_eq!(proxy.max_client_conn, 10_000);
    assert_eq!(proxy.auth_method, AuthMethod::ScramSha256);
    assert_eq!(proxy.query_wait_timeout, Duration::from_secs(120));
    assert_eq!(proxy.client_login_timeout, Duration::from_secs(60));
    assert_eq!(proxy.server_connect_timeout, Duration::from_secs(15));
    assert_eq!(proxy.server_reset_query, "DISCARD ALL");
    assert_eq!(proxy.max_message_size, 67_108_864);
    assert_eq!(proxy.workers, 1);
    assert_eq!(proxy.monitor_user.as_deref(), Some("app"), "first user");
    assert!(proxy.tcp_keepalive);
    assert_eq!(config.log, LogConfig::default());
    assert_eq!(config.log.level, "info");
    assert_eq!(config.log.format, LogFormat::Plain);
    assert!(config.databases.is_empty());

    // Empty tables are the same as missing ones.
    let config2 = parse_ok(&format!("[proxy]\n[log]\n[databases]\n{ONE_USER}"));
    assert_eq!(config2, config);

    let db = parse_ok(&format!("{ONE_USER}[databases.sales]\nhosts = [\"h\"]\n"));
    let sales = &db.databases["sales"];
    assert_eq!(sales.dbname, "sales");
    assert_eq!((sales.pool_size, sales.pool_mode), (None, None));
}

#[test]
fn invalid_file_reports_every_problem_with_its_path() {
    let text = r#"
        [proxy]
        listen = "nowhere"
        pool_mode = "foo"
        default_pool_size = 0
        max_client_conn = "many"
        auth_method = "password"
        query_wait_timeout = "5x"
        client_login_timeout = 60
        max_message_size = 100
        workers = -1
        nice = -21
        monitor_user = "ghost"
        tcp_keepalive = "yes"
        bogus = 1

        [log]
        level = "verbose"
        format = "xml"

        [[users]]
        name = "app"
        pool_size = 0

        [[users]]
        password = "x"

        [[users]]
        name = "app"

        [[users]]
        name = ""
        password = "SCRAM-SHA-256$x"

        [databases.app]
        hosts = ["127.0.0.1:5432", "db:x", "[::1", "127.0.0.1"]
        pool_mode = "batch"

        [databases.empty]
        hosts = []

        [databases.nohosts]
        dbname = ""

        [databases.scalar]
        "#;
    let found = problems(text);
    let expected = [
        r#"proxy.listen: invalid listen address "nowhere" (use e.g. "127.0.0.1:6432", "0.0.0.0:6432", "[::1]:6432" or "localhost:6432")"#,
        r#"proxy.pool_mode: expected one of "session", "transaction", "statement", got "foo""#,
        "proxy.default_pool_size: must be at least 1, got 0",
        "proxy.max_client_conn: expected an integer, got a string",
        r#"proxy.auth_method: expected one of "scram-sha-256", "md5", "trust", got "password""#,
        r#"proxy.query_wait_timeout: invalid duration "5x" (use e.g. "500ms", "30s", "2m")"#,
        r#"proxy.client_login_timeout: expected a string with a unit, like "30s", got an integer"#,
        "proxy.max_message_size: must be between 1024 and 2147483647 bytes, got 100",
        "proxy.workers: must be at least 0, got -1",
        "proxy.nice: must be between -20 and 19, got -21",
        "proxy.tcp_keepalive: expected a boolean (true or false), got a string",
        "proxy.bogus: unknown key",
        r#"log.level: expected one of "error", "warn", "info", "debug", "trace", got "verbose""#,
        r#"log.format: expected one of "plain", "json", got "xml""#,
        "users[0].pool_size: must be at least 1, got 0",
        "users[1].name: missing required key",
        r#"users[2].name: duplicate user "app""#,
        "users[3].name: user name must not be empty",
        "users[3].password: malformed SCRAM secret: missing \"$\" before the keys \
         (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)",
        r#"databases.app.hosts[1]: invalid port "x""#,
        r#"databases.app.hosts[2]: invalid host "[::1": missing "]" after the IPv6 address"#,
        r#"databases.app.hosts[3]: duplicate host "127.0.0.1:5432""#,
        r#"databases.app.pool_mode: expected one of "session", "transaction", "statement", got "batch""#,
        "databases.empty.hosts: must list at least one host",
        "databases.nohosts.hosts: missing required key",
        "databases.nohosts.dbname: must not be empty (leave the key out to use the table name)",
        "databases.scalar.hosts: missing required key",
        r#"proxy.monitor_user: unknown user "ghost" (not in [[users]])"#,
    ];
    assert_eq!(found, expected, "all problems, in file order");
}

#[test]
fn unknown_keys_are_reported_at_every_level() {
    let text = r#"
        colour = "blue"
        [proxy]
        pool_size = 3
        [log]
        file = "/var/log/pgferry.log"
        [[users]]
        name = "app"
        role = "admin"
        [databases.app]
        hosts = ["h"]
        dbnmae = "x"
        [extra]
        "#;
    let found = problems(text);
    assert_eq!(
        found,
        [
            "proxy.pool_size: unknown key",
            "log.file: unknown key",
            "users[0].role: unknown key",
            r#"databases.app.dbnmae: unknown key (did you mean "dbname"?)"#,
            "colour: unknown key",
            "extra: unknown key",
        ]
    );
    // Near misses get a hint; quoting follows TOML for keys that are not bare.
    let found = problems_with_user("[proxy]\npool_mod = \"session\"\n\"a.b\" = 1\n");
    assert_eq!(
        found,
        [
            r#"proxy."a.b": unknown key"#,
            r#"proxy.pool_mod: unknown key (did you mean "pool_mode"?)"#,
        ]
    );
}

#[test]
fn wrong_types_are_reported() {
    let found = problems(
        r#"
        proxy = 5
        log = "info"
        users = { name = "app" }
        databases = []
        "#,
    );
    assert_eq!(
        found,
        [
            "proxy: expected a table, got an integer",
            "log: expected a table, got a string",
            "users: expected an array of tables ([[users]]), got a table",
            "databases: expected a table, got an array",
        ]
    );
    let found = problems_with_user(
        r#"
        [databases]
        app = "127.0.0.1"
        [databases.b]
        hosts = "127.0.0.1"
        [databases.c]
        hosts = ["ok", 5]
        pool_size = 1.5
        "#,
    );
    assert_eq!(
        found,
        [
            "databases.app: expected a table ([databases.NAME]), got a string",
            "databases.b.hosts: expected an array of strings, got a string",
            "databases.c.hosts[1]: expected a string, got an integer",
            "databases.c.pool_size: expected an integer, got a float",
        ]
    );
    let found = problems("users = [\"app\"]\n");
    assert_eq!(found, ["users[0]: expected a table, got a string"]);
}

#[test]
fn users_are_required() {
    let needed = "users: at least one [[users]] entry is required \
                  (pgferry logs in to Postgres as these users)";
    assert_eq!(problems(""), [needed]);
    assert_eq!(problems("users = []"), [needed]);
    assert_eq!(problems("[proxy]\nauth_method = \"trust\"\n"), [needed]);
}

#[test]
fn monitor_user_must_name_a_user() {
    let text = format!("[proxy]\nmonitor_user = \"app\"\n{ONE_USER}");
    assert_eq!(parse_ok(&text).proxy.monitor_user.as_deref(), Some("app"));
    assert_eq!(
        problems_with_user("[proxy]\nmonitor_user = \"\"\n"),
        [r#"proxy.monitor_user: unknown user "" (not in [[users]])"#]
    );
}

#[test]
fn syntax_error_is_one_problem_with_line_and_column() {
    let err = Config::parse("[proxy]\nlisten = \"a\"\npool_mode = \n").unwrap_err();
    let ConfigError::Invalid(found) = err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "line 3, column 13");
    assert!(
        found[0].message.starts_with("TOML syntax error: "),
        "{found:?}"
    );

    // A key given twice is a syntax error too.
    let found = problems("[proxy]\nworkers = 1\nworkers = 2\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("line 3, column 1: "), "{found:?}");
}

#[test]
fn durations() {
    let ok = [
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("2m", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
        ("1d", Duration::from_secs(86_400)),
        ("1.5s", Duration::from_millis(1500)),
        ("0.1s", Duration::from_millis(100)),
        ("1.1s", Duration::from_millis(1100)),
        ("0s", Duration::ZERO),
        ("250us", Duration::from_micros(250)),
        ("0.5ms", Duration::from_micros(500)),
        (" 10 s ", Duration::from_secs(10)),
        ("0.0000000001s", Duration::ZERO),
    ];
    for (text, expected) in ok {
        assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
    }
    for bad in [
        "", "30", "5x", "s", "-1s", ".5s", "1.s", "1..5s", "1.2.3s", "1 h 2 m", "1S", "1e3s", "1ns",
    ] {
        let err = parse_duration(bad).unwrap_err();
        assert_eq!(
            err,
            format!("invalid duration {bad:?} (use e.g. \"500ms\", \"30s\", \"2m\")")
        );
    }
    assert_eq!(
        parse_duration("999999999999999999999d").unwrap_err(),
        "duration \"999999999999999999999d\" is too large"
    );
    // Every duration key goes through the same parser.
    let found = problems_with_user(
        "[proxy]\nquery_wait_timeout = \"1\"\nclient_login_timeout = \"x\"\n\
         server_connect_timeout = \"1.5.5s\"\n",
    );
    let keys: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "proxy.query_wait_timeout",
            "proxy.client_login_timeout",
            "proxy.server_connect_timeout"
        ]
    );
}

#[test]
fn sizes() {
    let ok = [
        ("1024", 1024),
        ("512kB", 512 * 1024),
        ("512KB", 512 * 1024),
        ("16MB", 16 << 20),
        ("16MiB", 16 << 20),
        ("16mb", 16 << 20),
        ("16 MB", 16 << 20),
        ("1GB", 1 << 30),
        ("1GiB", 1 << 30),
        ("100B", 100),
        ("2TB", 2 << 40),
    ];
    for (text, expected) in ok {
        assert_eq!(parse_size(text), Ok(expected), "{text:?}");
    }
    for bad in ["", "MB", "1.5MB", "-1MB", "16XB", "16 M B"] {
        assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
    }
    assert!(parse_size("99999999999TB")
        .unwrap_err()
        .contains("too large"));

    let size = |value: &str| {
        let text = format!("[proxy]\nmax_message_size = {value}\n{ONE_USER}");
        Config::parse(&text).map(|c| c.proxy.max_message_size)
    };
    assert_eq!(size("1024").unwrap(), 1024);
    assert_eq!(size("\"1kB\"").unwrap(), 1024);
    assert_eq!(size("\"16MiB\"").unwrap(), 16 << 20);
    assert_eq!(size("\"1GB\"").unwrap(), 1 << 30);
    assert_eq!(size("2147483647").unwrap(), 2_147_483_647);
    let message = |value: &str| match size(value) {
        Err(ConfigError::Invalid(p)) => p[0].to_string(),
        other => panic!("expected a problem for {value}, got {other:?}"),
    };
    assert_eq!(
        message("1023"),
        "proxy.max_message_size: must be between 1024 and 2147483647 bytes, got 1023"
    );
    assert_eq!(
        message("\"2GB\""),
        "proxy.max_message_size: must be between 1024 and 2147483647 bytes, got 2147483648"
    );
    assert_eq!(
        message("\"16XB\""),
        r#"proxy.max_message_size: invalid size "16XB" (use e.g. 1048576, "512kB", "16MB", "1GB")"#
    );
    assert_eq!(message("-5"), "proxy.max_message_size: invalid size -5");
    assert_eq!(
        message("1.5"),
        r#"proxy.max_message_size: expected an integer or a string like "16MB", got a float"#
    );
}

#[test]
fn hosts() {
    let ok = [
        ("127.0.0.1:5433", host("127.0.0.1", 5433), "127.0.0.1:5433"),
        ("127.0.0.1", host("127.0.0.1", 5432), "127.0.0.1:5432"),
        ("[::1]:6000", host("::1", 6000), "[::1]:6000"),
        ("[::1]", host("::1", 5432), "[::1]:5432"),
        ("[0:0::1]", host("::1", 5432), "[::1]:5432"),
        ("[2001:DB8::1]:5", host("2001:db8::1", 5), "[2001:db8::1]:5"),
        ("db1", host("db1", 5432), "db1:5432"),
        (
            "DB-1.Example.com:6543",
            host("db-1.example.com", 6543),
            "db-1.example.com:6543",
        ),
        (
            "pg_primary.internal",
            host("pg_primary.internal", 5432),
            "pg_primary.internal:5432",
        ),
        (
            "localhost:65535",
            host("localhost", 65535),
            "localhost:65535",
        ),
    ];
    for (text, expected, display) in ok {
        let parsed = parse_host(text).unwrap();
        assert_eq!(parsed, expected, "{text:?}");
        assert_eq!(parsed.to_string(), display);
        assert_eq!(text.parse::<HostAddr>().unwrap(), expected);
    }
    let bad = [
        ("", "empty host address"),
        (":5432", "empty host name"),
        ("db:x", r#"invalid port "x""#),
        ("db:", r#"invalid port """#),
        ("db:0", r#"invalid port "0""#),
        ("db:65536", r#"invalid port "65536""#),
        ("db:+5", r#"invalid port "+5""#),
        ("[::1]:x", r#"invalid port "x""#),
        (
            "[::1]5432",
            r#"invalid host "[::1]5432": expected ":port" after "]""#,
        ),
        ("[db1]:5432", r#"invalid IPv6 address "db1""#),
        (
            "::1",
            r#"invalid host "::1": write IPv6 addresses in brackets, e.g. "[::1]:5432""#,
        ),
        ("256.1.1.1", r#"invalid IPv4 address "256.1.1.1""#),
        ("10.0.0", r#"invalid IPv4 address "10.0.0""#),
        ("-db", r#"invalid host name "-db""#),
        ("db..example", r#"invalid host name "db..example""#),
        ("db example", r#"invalid host name "db example""#),
        (
            "/var/run/postgresql",
            r#"invalid host name "/var/run/postgresql""#,
        ),
    ];
    for (text, message) in bad {
        assert_eq!(parse_host(text).unwrap_err(), message, "{text:?}");
    }
    let long_label = "a".repeat(64);
    assert!(parse_host(&long_label).is_err());
    assert!(parse_host(&"a".repeat(63)).is_ok());

    // Duplicates are judged after normalisation.
    let found = problems_with_user(
        "[databases.app]\nhosts = [\"DB1\", \"db1:5432\", \"[::1]\", \"[0::1]:5432\", \"db1:5433\"]\n",
    );
    assert_eq!(
        found,
        [
            r#"databases.app.hosts[1]: duplicate host "db1:5432""#,
            r#"databases.app.hosts[3]: duplicate host "[::1]:5432""#,
        ]
    );
}

#[test]
fn listen_addresses() {
    let ok = [
        ("127.0.0.1:6432", "127.0.0.1:6432"),
        ("0.0.0.0:6432", "0.0.0.0:6432"),
        ("[::1]:6432", "[::1]:6432"),
        ("[::]:6432", "[::]:6432"),
        ("localhost:7000", "127.0.0.1:7000"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ];
    for (text, expected) in ok {
        assert_eq!(
            parse_listen(text),
            Ok(expected.parse().unwrap()),
            "{text:?}"
        );
    }
    for bad in [
        "127.0.0.1",
        "localhost",
        "localhost:x",
        "db.example.com:6432",
        "::1:6432",
        "",
    ] {
        assert!(parse_listen(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn password_classification() {
    assert_eq!(
        Password::parse("secret"),
        Ok(Password::Plain("secret".into()))
    );
    assert_eq!(Password::parse(MD5), Ok(Password::Md5(MD5.into())));
    assert_eq!(Password::parse(SCRAM), Ok(Password::Scram(SCRAM.into())));
    // Near misses of the md5 form are plaintext passwords, as in PgBouncer.
    for plain in [
        "md5",
        "md5f2a3ec4bd3e4e7bd1a0ab5c5bd5f1e1",
        "md5f2a3ec4bd3e4e7bd1a0ab5c5bd5f1e1c0",
        "md5F2A3EC4BD3E4E7BD1A0AB5C5BD5F1E1C",
        "md5f2a3ec4bd3e4e7bd1a0ab5c5bd5f1e1g",
        "scram-sha-256$not-a-secret",
    ] {
        assert_eq!(Password::parse(plain), Ok(Password::Plain(plain.into())));
    }
    let keys =
        "f0KxauqiB4dlKIK5oTDo2lCFe7OyoLsXSr3fR5Lq/nM=:LfLAfRXRD4VbTMj8pbekYwdA7lQPvI362RRdVFjSuD0=";
    let bad_scram = [
        ("SCRAM-SHA-256$", "missing \"$\" before the keys"),
        (
            "SCRAM-SHA-256$4096$a:b",
            "missing \":\" between iteration count and salt",
        ),
        (
            "SCRAM-SHA-256$4096:c2FsdA==$abc",
            "missing \":\" between StoredKey and ServerKey",
        ),
        (
            &format!("SCRAM-SHA-256$0:c2FsdA==${keys}"),
            "iteration count must be a positive integer",
        ),
        (
            &format!("SCRAM-SHA-256$-1:c2FsdA==${keys}"),
            "iteration count must be a positive integer",
        ),
        (
            &format!("SCRAM-SHA-256$abc:c2FsdA==${keys}"),
            "iteration count must be a positive integer",
        ),
        (
            &format!("SCRAM-SHA-256$:c2FsdA==${keys}"),
            "iteration count must be a positive integer",
        ),
        (
            &format!("SCRAM-SHA-256$4096:c2Fsd!==${keys}"),
            "salt is not valid base64",
        ),
        (
            &format!("SCRAM-SHA-256$4096:c2Fsd${keys}"),
            "salt is not valid base64",
        ),
        (
            &format!("SCRAM-SHA-256$4096:${keys}"),
            "salt is not valid base64",
        ),
        (
            &format!("SCRAM-SHA-256$4096:c2F===${keys}"),
            "salt is not valid base64",
        ),
        (
            "SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:LfLAfRXRD4VbTMj8pbekYwdA7lQPvI362RRdVFjSuD0=",
            "StoredKey is not a base64-encoded 32-byte digest",
        ),
        (
            "SCRAM-SHA-256$4096:c2FsdA==$LfLAfRXRD4VbTMj8pbekYwdA7lQPvI362RRdVFjSuD0=:c2Fsd_==",
            "ServerKey is not a base64-encoded 32-byte digest",
        ),
    ];
    for (secret, why) in bad_scram {
        let err = Password::parse(secret).unwrap_err();
        assert!(
            err.starts_with(&format!("malformed SCRAM secret: {why} (")),
            "{secret}: {err}"
        );
        assert!(!err.contains(keys), "the message must not echo the secret");
    }
    assert_eq!(
        problems_with_user("[[users]]\nname = \"b\"\npassword = \"\"\n"),
        ["users[0].password: must not be empty (leave the key out for no password)"]
    );
}

#[test]
fn passwords_never_show_in_debug_or_display() {
    for (password, shown) in [
        (
            Password::Plain("hunter2".into()),
            "Password::Plain(<redacted>)",
        ),
        (Password::Md5(MD5.into()), "Password::Md5(<redacted>)"),
        (Password::Scram(SCRAM.into()), "Password::Scram(<redacted>)"),
    ] {
        assert_eq!(format!("{password:?}"), shown);
        assert_eq!(format!("{password:#?}"), shown);
        assert_eq!(password.to_string(), shown);
    }
    assert_eq!(Password::Plain("hunter2".into()).expose(), "hunter2");
    assert_eq!(Password::Md5(MD5.into()).expose(), MD5);
    assert_eq!(Password::Scram(SCRAM.into()).expose(), SCRAM);

    let text = format!(
        "[[users]]\nname = \"a\"\npassword = \"hunter2\"\n\
         [[users]]\nname = \"b\"\npassword = \"{MD5}\"\n\
         [[users]]\nname = \"c\"\npassword = \"{SCRAM}\"\n"
    );
    let config = parse_ok(&text);
    let debug = format!("{config:?} {config:#?}");
    for secret in [
        "hunter2",
        &MD5[3..],
        "LfLAfRXRD4Vb",
        "cGdmZXJyeS1leGFtcGxlIQ",
    ] {
        assert!(!debug.contains(secret), "Debug leaked {secret:?}: {debug}");
    }
}

#[test]
fn pool_settings_precedence_is_user_then_database_then_proxy() {
    let config = parse_ok(
        r#"
        [proxy]
        pool_mode = "transaction"
        default_pool_size = 20
        [[users]]
        name = "plain"
        [[users]]
        name = "special"
        pool_mode = "session"
        pool_size = 2
        [databases.tuned]
        hosts = ["h"]
        pool_mode = "statement"
        pool_size = 40
        [databases.default]
        hosts = ["h"]
        "#,
    );
    assert_eq!(
        config.pool_mode_for("default", "plain"),
        PoolMode::Transaction
    );
    assert_eq!(config.pool_size_for("default", "plain"), 20);
    assert_eq!(config.pool_mode_for("tuned", "plain"), PoolMode::Statement);
    assert_eq!(config.pool_size_for("tuned", "plain"), 40);
    assert_eq!(config.pool_mode_for("tuned", "special"), PoolMode::Session);
    assert_eq!(config.pool_size_for("tuned", "special"), 2);
    assert_eq!(
        config.pool_mode_for("default", "special"),
        PoolMode::Session
    );
    // Unknown names fall through to the next level.
    assert_eq!(
        config.pool_mode_for("nope", "nobody"),
        PoolMode::Transaction
    );
    assert_eq!(config.pool_size_for("tuned", "nobody"), 40);
    assert_eq!(config.pool_size_for("nope", "special"), 2);

    assert_eq!(config.user("special").map(|u| u.pool_size), Some(Some(2)));
    assert!(config.user("nobody").is_none());
}

#[test]
fn keywords_display_and_parse_as_written_in_the_file() {
    for mode in [
        PoolMode::Session,
        PoolMode::Transaction,
        PoolMode::Statement,
    ] {
        assert_eq!(mode.to_string().parse::<PoolMode>(), Ok(mode));
    }
    assert_eq!(PoolMode::Transaction.to_string(), "transaction");
    assert_eq!(AuthMethod::ScramSha256.to_string(), "scram-sha-256");
    assert_eq!(AuthMethod::Md5.to_string(), "md5");
    assert_eq!(AuthMethod::Trust.to_string(), "trust");
    assert_eq!("trust".parse::<AuthMethod>(), Ok(AuthMethod::Trust));
    assert_eq!(LogFormat::Json.to_string(), "json");
    assert!("Session".parse::<PoolMode>().is_err(), "case-sensitive");
}

#[test]
fn empty_names_are_problems() {
    let found = problems_with_user("[databases.\"\"]\nhosts = [\"h\"]\n");
    assert_eq!(found, [r#"databases."": database name must not be empty"#]);
}

#[test]
fn error_display_lists_one_problem_per_line() {
    let err = Config::parse("[proxy]\nworkers = \"x\"\nbogus = 1\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration:\n\
         \x20 proxy.workers: expected an integer, got a string\n\
         \x20 proxy.bogus: unknown key\n\
         \x20 users: at least one [[users]] entry is required \
         (pgferry logs in to Postgres as these users)"
    );
}

#[test]
fn load_reads_the_file_or_says_which_file_failed() {
    let dir = std::env::temp_dir().join(format!("pgferry-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pgferry.toml");
    std::fs::write(&path, ONE_USER).unwrap();
    assert_eq!(Config::load(&path).unwrap(), parse_ok(ONE_USER));

    let missing = dir.join("missing.toml");
    let err = Config::load(&missing).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Io { path, .. } if path == &missing),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .starts_with(&format!("cannot read config file {}: ", missing.display())));
    assert!(std::error::Error::source(&err).is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shipped_example_config_parses_cleanly() {
    let config = parse_ok(EXAMPLE);
    // Commented-out defaults mean the explicit values must equal the defaults.
    assert_eq!(
        config.proxy,
        ProxyConfig {
            monitor_user: Some("app".to_owned()),
            ..ProxyConfig::default()
        }
    );
    assert_eq!(config.log, LogConfig::default());
    let names: Vec<&str> = config.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["app", "reporting"]);
    assert_eq!(
        config.users[0].password,
        Some(Password::Plain("secret".into()))
    );
    assert!(matches!(config.users[1].password, Some(Password::Scram(_))));
    let app = &config.databases["app"];
    assert_eq!(
        app.hosts,
        [
            host("127.0.0.1", 5432),
            host("127.0.0.1", 5433),
            host("127.0.0.1", 5434)
        ]
    );
    assert_eq!(app.dbname, "app");
    assert_eq!(config.pool_mode_for("app", "reporting"), PoolMode::Session);
    assert_eq!(config.pool_size_for("app", "app"), 20);
}

#[test]
fn log_switches_in_log_or_proxy() {
    let users = "[[users]]\nname = \"a\"\n";
    let c = parse_ok(&format!("[log]\nlog_connections = false\n{users}"));
    assert!(!c.log.log_connections && c.log.log_disconnections && c.log.log_pooler_errors);
    let c = parse_ok(&format!(
        "[proxy]\nlog_pooler_errors = false\nlog_disconnections = false\n{users}"
    ));
    assert!(c.log.log_connections && !c.log.log_disconnections && !c.log.log_pooler_errors);
}

#[test]
fn limit_keys() {
    let c = parse_ok(
        "[proxy]\nmax_db_connections = 10\nmax_user_connections = 8\nreserve_pool_size = 2\n\
         reserve_pool_timeout = \"250ms\"\nserver_lifetime = \"1h\"\nserver_idle_timeout = \"0s\"\n\
         client_idle_timeout = \"5m\"\nidle_transaction_timeout = \"30s\"\nquery_timeout = \"2s\"\n\
         [[users]]\nname = \"a\"\nmax_user_connections = 3\n\
         [databases.d]\nhosts = [\"h\"]\nmax_db_connections = 4\n",
    );
    let p = &c.proxy;
    assert_eq!((p.max_db_connections, p.max_user_connections), (10, 8));
    assert_eq!(p.reserve_pool_size, 2);
    assert_eq!(p.reserve_pool_timeout, Duration::from_millis(250));
    assert_eq!(p.server_lifetime, Duration::from_secs(3600));
    assert_eq!(p.server_idle_timeout, Duration::ZERO);
    assert_eq!(p.client_idle_timeout, Duration::from_secs(300));
    assert_eq!(p.idle_transaction_timeout, Duration::from_secs(30));
    assert_eq!(p.query_timeout, Duration::from_secs(2));
    assert_eq!(c.users[0].max_user_connections, Some(3));
    assert_eq!(c.databases["d"].max_db_connections, Some(4));
}

/// Every key the loader knows should be documented in the example, commented out or not.
#[test]
fn shipped_example_documents_every_key() {
    let keys = [
        "listen",
        "pool_mode",
        "default_pool_size",
        "max_client_conn",
        "auth_method",
        "query_wait_timeout",
        "client_login_timeout",
        "server_connect_timeout",
        "server_reset_query",
        "max_message_size",
        "workers",
        "cpu_policy",
        "nice",
        "so_reuseport",
        "peer_id",
        "peer_listen",
        "monitor_user",
        "tcp_keepalive",
        "max_db_connections",
        "max_user_connections",
        "reserve_pool_size",
        "reserve_pool_timeout",
        "server_lifetime",
        "server_idle_timeout",
        "client_idle_timeout",
        "idle_transaction_timeout",
        "query_timeout",
        "shutdown_timeout",
        "log_connections",
        "log_disconnections",
        "log_pooler_errors",
        "level",
        "format",
        "name",
        "password",
        "pool_size",
        "hosts",
        "dbname",
        "client_mode",
        "client_cert_file",
        "client_key_file",
        "client_ca_file",
        "client_verify",
        "server_mode",
        "server_ca_file",
        "server_cert_file",
        "server_key_file",
        "database",
        "user",
        "address",
        "tls",
        "method",
    ];
    for key in keys {
        let documented = EXAMPLE.lines().any(|l| {
            l.trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} = "))
        });
        assert!(documented, "config/pgferry.toml does not document {key:?}");
    }
}

#[test]
fn auth_source_keys_defaults_and_checks() {
    let d = parse_ok(ONE_USER).proxy;
    assert_eq!(d.auth_file, None);
    assert_eq!(d.auth_user, None);
    assert_eq!(d.auth_query, DEFAULT_AUTH_QUERY);
    assert_eq!(d.auth_dbname, None);
    assert_eq!(d.auth_cache_ttl, Duration::from_secs(60));
    assert_eq!(d.auth_failure_delay, Duration::from_millis(100));
    assert_eq!(d.auth_failure_max_delay, Duration::from_secs(5));

    let c = parse_ok(&format!(
        "[proxy]\nauth_file = \"/etc/u.txt\"\nauth_user = \"app\"\nauth_dbname = \"postgres\"\n\
         auth_query = \"SELECT 1, 2 WHERE $1 = ''\"\nauth_cache_ttl = \"5s\"\n\
         auth_failure_delay = \"0s\"\nauth_failure_max_delay = \"0s\"\n{ONE_USER}"
    ))
    .proxy;
    assert_eq!(
        c.auth_file.as_deref(),
        Some(std::path::Path::new("/etc/u.txt"))
    );
    assert_eq!(c.auth_user.as_deref(), Some("app"));
    assert_eq!(c.auth_dbname.as_deref(), Some("postgres"));
    assert_eq!(c.auth_cache_ttl, Duration::from_secs(5));
    assert_eq!(c.auth_failure_delay, Duration::ZERO);

    assert_eq!(
        problems_with_user(
            "[proxy]\nauth_file = \"\"\nauth_query = \"\"\n\
             auth_failure_delay = \"2s\"\nauth_failure_max_delay = \"1s\"\n"
        ),
        [
            "proxy.auth_file: must not be empty (leave the key out instead)",
            "proxy.auth_query: must not be empty (leave the key out instead)",
            "proxy.auth_failure_max_delay: must not be less than auth_failure_delay",
        ]
    );
}

/// so_reuseport, peer_id, peer_listen and [peers] load; the same [peers]
/// table (own id included) serves every process.
#[test]
fn peering_keys_load() {
    let c = parse_ok(&format!(
        "[proxy]\nso_reuseport = true\npeer_id = 2\npeer_listen = \"127.0.0.1:7102\"\n\
         [peers]\n1 = \"127.0.0.1:7101\"\n2 = \"127.0.0.1:7102\"\n{ONE_USER}"
    ));
    assert!(c.proxy.so_reuseport);
    assert_eq!(c.proxy.peer_id, 2);
    assert_eq!(c.proxy.peer_listen, Some("127.0.0.1:7102".parse().unwrap()));
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[&1], "127.0.0.1:7101".parse().unwrap());
    let d = parse_ok(ONE_USER);
    assert!(!d.proxy.so_reuseport);
    assert_eq!(d.proxy.peer_id, 0);
    assert!(d.proxy.peer_listen.is_none() && d.peers.is_empty());
}

#[test]
fn peering_problems_are_reported() {
    let found = problems_with_user(
        "[proxy]\npeer_id = 16384\n[peers]\n0 = \"127.0.0.1:1\"\nx = \"127.0.0.1:2\"\n3 = 4\n4 = \"nowhere\"\n",
    );
    assert!(
        found.contains(&"proxy.peer_id: must be between 0 and 16383, got 16384".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"peers.0: the key must be a peer id from 1 to 16383".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"peers.x: the key must be a peer id from 1 to 16383".to_owned()),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("peers.3: expected a string")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("peers.4: invalid listen address")),
        "{found:?}"
    );
    // Peered keys leave 131,072 numbers per process.
    let found = problems_with_user("[proxy]\npeer_id = 1\nmax_client_conn = 200000\n");
    assert_eq!(
        found,
        vec!["proxy.max_client_conn: must be less than 131072 when peer_id is set (the cancel keys one peered process can hand out)"]
    );
    assert!(Config::parse(&format!("[proxy]\nmax_client_conn = 200000\n{ONE_USER}")).is_ok());
}
