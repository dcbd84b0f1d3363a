//! The command line: --version, --check, startup failures.

use std::process::Command;

fn pgferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pgferry"))
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pgferry-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn version_prints_the_crate_version() {
    let out = pgferry().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

fn assert_check_passes(relative: &str) {
    let path = format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"));
    let out = pgferry()
        .args(["--config", &path, "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{relative}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_accepts_the_docker_config() {
    assert_check_passes("docker/pgferry.toml");
}

#[test]
fn check_accepts_the_shipped_example_config() {
    assert_check_passes("config/pgferry.toml");
}

#[test]
fn check_reports_every_problem_with_its_key_path() {
    let path = write(
        "bad.toml",
        r#"
[proxy]
listen = "127.0.0.1:notaport"
pool_mode = "sometimes"
default_pool_size = 0
query_wait_timeout = "5 parsecs"
mystery = 1

[[users]]
name = "app"
password = "secret"

[databases.app]
hosts = []
colour = "blue"
"#,
    );
    let out = pgferry()
        .args(["--config", path.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an invalid config must fail --check");
    let text = String::from_utf8_lossy(&out.stderr);
    for key in [
        "proxy.listen",
        "proxy.pool_mode",
        "proxy.default_pool_size",
        "proxy.query_wait_timeout",
        "proxy.mystery",
        "databases.app.hosts",
        "databases.app.colour",
    ] {
        assert!(
            text.contains(key),
            "--check output must mention {key}:\n{text}"
        );
    }
}

#[test]
fn running_with_an_invalid_config_fails_fast() {
    let path = write("bad2.toml", "[proxy]\npool_mode = 3\n");
    let out = pgferry()
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("proxy.pool_mode"));
}

#[test]
fn missing_config_file_is_reported() {
    let out = pgferry()
        .args(["--config", "/nonexistent/pgferry.toml", "--check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pgferry.toml"));
}
