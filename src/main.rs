//! The pgferry binary: CLI, logging, runtime, signals.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pgferry::config::{Config, ConfigError, LogFormat};
use pgferry::lifecycle::ShutdownKind;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "pgferry",
    version,
    about = "Postgres connection-routing proxy with pooling"
)]
struct Cli {
    /// Path to the TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration, print every problem, and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            report(&cli.config, &e);
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        println!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    // Before the runtime starts its threads, so that they inherit it.
    if let Err(e) = pgferry::sched::apply(config.proxy.cpu_policy) {
        tracing::warn!(
            cpu_policy = %config.proxy.cpu_policy,
            error = %e,
            "cannot set the CPU scheduling policy; running with the default"
        );
    }
    if let Err(e) = pgferry::sched::apply_nice(config.proxy.nice) {
        tracing::warn!(
            nice = config.proxy.nice,
            error = %e,
            "cannot set the nice value (lowering it needs CAP_SYS_NICE); running with the inherited one"
        );
    }
    // One worker: a single-threaded runtime, like PgBouncer's event loop (no
    // cross-thread wake-ups or work stealing; the cheapest CPU per
    // transaction where pgferry shares a small machine with Postgres).
    let mut rt = if config.proxy.workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if config.proxy.workers > 0 {
            b.worker_threads(config.proxy.workers);
        }
        b
    };
    rt.enable_all();
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgferry: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(config, cli.config.clone()))
}

fn report(path: &std::path::Path, e: &ConfigError) {
    match e {
        ConfigError::Invalid(problems) => {
            eprintln!("{}: {} problem(s):", path.display(), problems.len());
            for p in problems {
                eprintln!("  {p}");
            }
        }
        other => eprintln!("pgferry: {other}"),
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("pgferry={}", config.log.level))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain => builder.init(),
    }
}

async fn run(config: Config, path: std::path::PathBuf) -> ExitCode {
    let app = match pgferry::app::App::start_from(config, Some(path)).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let state = app.state.clone();
    tokio::spawn(forward_signals(state.clone()));
    let kind = state.lifecycle.wait_for(ShutdownKind::WaitForClients).await;
    tracing::info!(?kind, "shutting down");
    app.shutdown(kind).await;
    ExitCode::SUCCESS
}

/// SIGTERM asks for a graceful shutdown, SIGINT (Ctrl-C) for a fast one;
/// a SIGINT during a graceful drain ends it at once.
async fn forward_signals(state: std::sync::Arc<pgferry::state::State>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => loop {
                let kind = tokio::select! {
                    _ = term.recv() => ShutdownKind::Graceful,
                    _ = int.recv() => ShutdownKind::Fast,
                };
                state.lifecycle.request(kind);
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                state.lifecycle.request(ShutdownKind::Fast);
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        state.lifecycle.request(ShutdownKind::Fast);
    }
}
