//! Logging: JSON lines carry the client's fields; log_connections,
//! log_disconnections and log_pooler_errors work like PgBouncer's.

mod common;
mod support;

use std::time::Duration;

use common::*;
use support::*;

fn json_config(c: &Cluster, extra: &str) -> String {
    config(c, "transaction", 2, extra).replace(
        "[log]\nlevel = \"debug\"",
        "[log]\nlevel = \"info\"\nformat = \"json\"",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_lines_carry_their_fields_and_errors_are_logged() {
    let c = shared_cluster();
    let p = Proxy::start(&json_config(c, "client_idle_timeout = \"1s\""));
    let url = format!("{} application_name=logtest", p.url("app", "secret", "app"));
    let client = connect(&url).await;
    one(&client, "SELECT 1").await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(
        try_one(&client, "SELECT 1").await.is_err(),
        "idle client was closed"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = p.log();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line in:\n{log}"))
            .to_owned()
    };
    let login = line("client logged in");
    for field in [
        "\"client_id\":",
        "\"application_name\":\"logtest\"",
        "\"database\":\"app\"",
        "\"user\":\"app\"",
        "\"addr\":\"127.0.0.1:",
    ] {
        assert!(login.contains(field), "{field} missing in {login}");
    }
    let error = line("pooler error sent to client");
    assert!(
        error.contains("57P05") && error.contains("logtest"),
        "{error}"
    );
    let bye = line("client disconnected");
    assert!(
        bye.contains("duration_ms") && bye.contains("idle-session"),
        "{bye}"
    );

    // Switched off ([proxy] spelling, as in PgBouncer's ini).
    let p = Proxy::start(&json_config(
        c,
        "log_connections = false\nlog_disconnections = false",
    ));
    let client = connect(&p.url("app", "secret", "app")).await;
    one(&client, "SELECT 1").await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = p.log();
    assert!(!log.contains("client logged in"), "{log}");
    assert!(!log.contains("client disconnected"), "{log}");
}
