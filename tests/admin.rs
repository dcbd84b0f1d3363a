//! The admin console against a live workload: PgBouncer's SHOW views with
//! its column names in its order and values from live state, KILL_CLIENT,
//! SET, and stats_users being limited to SHOW.

mod common;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use support::*;
use tokio_postgres::{Client, SimpleQueryMessage};

fn ferry(extra: &str) -> Proxy {
    let c = shared_cluster();
    Proxy::start(&config(
        c,
        "transaction",
        4,
        &format!("admin_users = [\"app\"]\nstats_users = [\"md5user\"]\n{extra}"),
    ))
}

/// Column names and rows (name → value) of a SHOW.
async fn show(admin: &Client, sql: &str) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let msgs = admin
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut cols = Vec::new();
    let mut rows = Vec::new();
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(d) => {
                cols = d.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(r) => {
                let mut row = HashMap::new();
                for (i, c) in r.columns().iter().enumerate() {
                    row.insert(c.name().to_owned(), r.get(i).unwrap_or("").to_owned());
                }
                rows.push(row);
            }
            _ => {}
        }
    }
    (cols, rows)
}

fn num(row: &HashMap<String, String>, col: &str) -> u64 {
    row.get(col)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("column {col} not a number in {row:?}"))
}

/// PgBouncer 1.18's columns, in order, are a prefix of ours.
fn assert_prefix(cols: &[String], expected: &str) {
    let want: Vec<&str> = expected.split('|').collect();
    let got: Vec<&str> = cols.iter().map(String::as_str).collect();
    assert!(
        got.len() >= want.len() && got[..want.len()] == want[..],
        "columns\n got {got:?}\nwant {want:?} first"
    );
}

#[tokio::test]
async fn pgbouncer_views_report_the_live_workload() {
    let p = ferry("");
    let admin = connect(&p.url("app", "secret", "pgferry")).await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(connect(&p.url("app", "secret", "app")).await);
    }
    let n = 20;
    for w in &workers {
        for i in 0..n {
            w.batch_execute(&format!("BEGIN; SELECT {i}; COMMIT"))
                .await
                .unwrap();
        }
    }

    let (cols, rows) = show(&admin, "SHOW POOLS").await;
    assert_prefix(&cols, "database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode");
    let app = rows
        .iter()
        .find(|r| r["database"] == "app" && r["user"] == "app")
        .expect("a pool row for app/app");
    assert_eq!(num(app, "cl_active"), 3, "{app:?}");
    assert_eq!(num(app, "cl_waiting"), 0);
    assert!(num(app, "sv_idle") >= 1, "{app:?}");
    assert_eq!(app["pool_mode"], "transaction");

    let (cols, rows) = show(&admin, "SHOW STATS").await;
    assert_prefix(&cols, "database|total_xact_count|total_query_count|total_received|total_sent|total_xact_time|total_query_time|total_wait_time|avg_xact_count|avg_query_count|avg_recv|avg_sent|avg_xact_time|avg_query_time|avg_wait_time");
    let s = rows
        .iter()
        .find(|r| r["database"] == "app")
        .expect("app stats");
    assert!(num(s, "total_xact_count") >= 3 * n, "{s:?}");
    assert!(num(s, "total_query_count") >= 3 * n, "{s:?}");
    assert!(
        num(s, "total_received") > 0 && num(s, "total_sent") > 0,
        "{s:?}"
    );
    assert!(
        num(s, "total_xact_time") > 0 && num(s, "total_query_time") > 0,
        "{s:?}"
    );
    assert!(num(s, "avg_xact_count") > 0, "{s:?}");

    let (cols, rows) = show(&admin, "SHOW STATS_TOTALS").await;
    assert_prefix(
        &cols,
        "database|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time",
    );
    let t = rows
        .iter()
        .find(|r| r["database"] == "app")
        .expect("app totals");
    assert!(num(t, "xact_count") >= 3 * n);
    let (cols, _) = show(&admin, "SHOW STATS_AVERAGES").await;
    assert_prefix(
        &cols,
        "database|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time",
    );

    let conn_cols = "type|user|database|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name";
    let (cols, rows) = show(&admin, "SHOW CLIENTS").await;
    assert_prefix(&cols, conn_cols);
    let ours: Vec<_> = rows.iter().filter(|r| r["database"] == "app").collect();
    assert_eq!(ours.len(), 3, "{rows:?}");
    assert!(ours
        .iter()
        .all(|r| r["type"] == "C" && r["addr"] == "127.0.0.1"));
    let (cols, rows) = show(&admin, "SHOW SERVERS").await;
    assert_prefix(&cols, conn_cols);
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r["type"] == "S" && num(r, "remote_pid") > 0),
        "{rows:?}"
    );

    let (cols, rows) = show(&admin, "SHOW DATABASES").await;
    assert_prefix(&cols, "name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool|pool_mode|max_connections|current_connections|paused|disabled");
    let d = rows
        .iter()
        .find(|r| r["name"] == "app")
        .expect("app database");
    assert_eq!(num(d, "pool_size"), 4);
    assert!(num(d, "current_connections") >= 1);

    let (cols, rows) = show(&admin, "SHOW USERS").await;
    assert_prefix(&cols, "name|pool_mode");
    assert!(rows.iter().any(|r| r["name"] == "app"));

    let (cols, rows) = show(&admin, "SHOW LISTS").await;
    assert_prefix(&cols, "list|items");
    let item = |k: &str| {
        rows.iter()
            .find(|r| r["list"] == k)
            .map(|r| num(r, "items"))
    };
    assert_eq!(item("databases"), Some(1));
    assert_eq!(item("used_clients"), Some(3));

    let (cols, rows) = show(&admin, "SHOW CONFIG").await;
    assert_prefix(&cols, "key|value|default|changeable");
    let qwt = rows
        .iter()
        .find(|r| r["key"] == "query_wait_timeout")
        .expect("query_wait_timeout");
    assert_eq!(
        (
            qwt["value"].as_str(),
            qwt["default"].as_str(),
            qwt["changeable"].as_str()
        ),
        ("120s", "120s", "yes")
    );

    let (cols, rows) = show(&admin, "SHOW VERSION").await;
    assert_eq!(cols, vec!["version"]);
    assert!(rows[0]["version"].starts_with("pgferry "));

    for sub in ["NODES", "FAILOVERS", "PINS"] {
        show(&admin, &format!("SHOW {sub}")).await;
    }
}

#[tokio::test]
async fn pins_are_listed() {
    let p = ferry("");
    let admin = connect(&p.url("app", "secret", "pgferry")).await;
    let w = connect(&p.url("app", "secret", "app")).await;
    w.batch_execute("CREATE TEMP TABLE pinned_here (x int)")
        .await
        .unwrap();
    let (cols, rows) = show(&admin, "SHOW PINS").await;
    assert_eq!(
        cols,
        vec!["id", "database", "user", "reason", "since", "seconds"]
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0]["reason"].contains("temp"), "{rows:?}");
}

#[tokio::test]
async fn kill_client_closes_exactly_that_client() {
    let p = ferry("");
    let admin = connect(&p.url("app", "secret", "pgferry")).await;
    let victim = connect(&p.url("app", "secret", "app")).await;
    let other = connect(&p.url("app", "secret", "app")).await;
    victim
        .batch_execute("SET application_name = 'victim'")
        .await
        .unwrap();
    let pid: i32 = victim
        .query_one("SELECT 1", &[])
        .await
        .map(|r| r.get(0))
        .unwrap();
    assert_eq!(pid, 1);
    let (_, rows) = show(&admin, "SHOW CLIENTS").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    // The most recent connection has the larger id.
    let mut ids: Vec<u64> = rows.iter().map(|r| num(r, "id")).collect();
    ids.sort();
    let victim_id = ids[0];
    admin
        .simple_query(&format!("KILL_CLIENT {victim_id}"))
        .await
        .expect("KILL_CLIENT");
    let e = tokio::time::timeout(Duration::from_secs(10), victim.simple_query("SELECT 1"))
        .await
        .expect("killed client answered in time")
        .expect_err("killed client must fail");
    let db_err = e.as_db_error().map(|d| d.code().code().to_owned());
    assert!(
        db_err.as_deref() == Some("57P01") || victim.is_closed(),
        "expected 57P01 or a closed connection, got {e:?}"
    );
    // The connection task notices the close asynchronously.
    for _ in 0..40 {
        if victim.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(victim.is_closed());
    other
        .simple_query("SELECT 1")
        .await
        .expect("the other client is untouched");
    let (_, rows) = show(&admin, "SHOW CLIENTS").await;
    assert_eq!(rows.len(), 1);
    assert_ne!(num(&rows[0], "id"), victim_id);
    // Unknown ids are a clear error, and the console stays usable.
    let e = admin.simple_query("KILL_CLIENT 999999").await.unwrap_err();
    assert_eq!(code(&e), "42704");
    show(&admin, "SHOW VERSION").await;
}

#[tokio::test]
async fn stats_users_can_show_but_not_control() {
    let p = ferry("");
    let stats = connect(&p.url("md5user", "md5pass", "pgbouncer")).await;
    let (_, rows) = show(&stats, "SHOW POOLS").await;
    assert!(!rows.is_empty());
    for cmd in [
        "PAUSE",
        "RESUME",
        "RECONNECT",
        "KILL app",
        "KILL_CLIENT 1",
        "SET query_wait_timeout = '5s'",
    ] {
        let e = stats.simple_query(cmd).await.expect_err(cmd);
        assert_eq!(code(&e), "42501", "{cmd}: {e}");
    }
    // A user in neither list cannot connect.
    let e = try_connect(&p.url("clearuser", "clearpass", "pgferry"))
        .await
        .expect_err("not allowed");
    assert_eq!(code(&e), "42501");
}

#[tokio::test]
async fn set_changes_runtime_settings_and_refuses_others() {
    let p = ferry("");
    let admin = connect(&p.url("app", "secret", "pgferry")).await;
    admin
        .simple_query("SET query_wait_timeout = '7s'")
        .await
        .expect("SET");
    admin
        .simple_query("SET default_pool_size = 6")
        .await
        .expect("SET");
    let (_, rows) = show(&admin, "SHOW CONFIG").await;
    let get = |k: &str| {
        rows.iter()
            .find(|r| r["key"] == k)
            .map(|r| r["value"].clone())
    };
    assert_eq!(get("query_wait_timeout").as_deref(), Some("7s"));
    assert_eq!(get("default_pool_size").as_deref(), Some("6"));
    let (_, rows) = show(&admin, "SHOW DATABASES").await;
    assert_eq!(num(&rows[0], "pool_size"), 6);
    for (cmd, want) in [
        ("SET listen = '1.2.3.4:5'", "55P02"),
        ("SET no_such_thing = 1", "42704"),
        ("SET default_pool_size = zero", "22023"),
        ("SET query_wait_timeout = 'soon'", "22023"),
        ("SET", "42601"),
        ("FROBNICATE", "42601"),
    ] {
        let e = admin.simple_query(cmd).await.expect_err(cmd);
        assert_eq!(code(&e), want, "{cmd}: {e}");
    }
    show(&admin, "SHOW VERSION").await;
}
