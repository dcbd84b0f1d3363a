//! Instruction-count harness: runs one named operation N times, for
//! `benches/callgrind.sh`, which runs it under callgrind with N = 0 and
//! N = 10000 and divides the difference by N. Setup (fixtures, runtime,
//! sockets) is the same in both runs, so it cancels out.
//!
//! Usage: `instructions OP N`; `instructions --list` prints the ops.
//! (`cargo bench` runs every bench with `--bench`: that does nothing here.)

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgferry::bench::{self as b, idle_pool, ClientStatements};
use pgferry::router::classify::{classify, FunctionPolicy};
use tokio::runtime::Builder;

/// Each op, with the work it repeats.
const OPS: &[(&str, &str)] = &[
    (
        "frame_pgbench_batch",
        "header scan of a pgbench -S extended batch (P/B/D/E/S)",
    ),
    (
        "frame_reply_100_rows",
        "header scan of a 100-row server reply",
    ),
    ("frame_copy_64k", "header scan of a 64 KiB COPY data stream"),
    (
        "message_reply_100_rows",
        "message (body) scan of a 100-row server reply",
    ),
    (
        "classify_short_select",
        "classify `SELECT id, name FROM users WHERE id = 42`",
    ),
    ("classify_pgbench_select", "classify the pgbench -S query"),
    ("classify_long_select", "classify a 2 KB reporting query"),
    ("parse_name", "statement name of a Parse"),
    ("share", "server name and Parse of a shared statement"),
    ("write_bind", "Bind rewritten into a reused buffer"),
    ("bind_path", "bind_statement + client lookup + write_bind"),
    ("deallocate_name_miss", "DEALLOCATE check of a SELECT"),
    (
        "rewrite_deallocate",
        "DEALLOCATE Query rewritten to the placeholder",
    ),
    (
        "pool_checkout_return",
        "idle checkout + guard drop, current_thread",
    ),
    (
        "pool_contended",
        "checkout + yield + drop, 100 tasks over 20 conns, current_thread",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (op, n) = match args.as_slice() {
        [op, n] => match n.parse::<u64>() {
            Ok(n) => (op.as_str(), n),
            Err(_) => usage(),
        },
        [flag] if flag == "--list" => {
            for (name, what) in OPS {
                println!("{name}\t{what}");
            }
            return;
        }
        [flag, ..] if flag == "--bench" => return,
        _ => usage(),
    };
    if !OPS.iter().any(|(name, _)| *name == op) {
        usage();
    }
    run(op, n);
}

fn usage() -> ! {
    eprintln!("usage: instructions OP N | --list");
    std::process::exit(2)
}

fn repeat<R>(n: u64, mut f: impl FnMut() -> R) {
    for _ in 0..n {
        black_box(f());
    }
}

fn run(op: &str, n: u64) {
    let batch = common::pgbench_batch();
    let reply = common::server_reply(100);
    let copy = common::copy_stream(64 * 1024);
    let long = common::long_select();
    let policy = FunctionPolicy::default();
    let parse_msg = common::parse("P0_1", common::PGBENCH_SELECT);
    let bind_msg = common::bind("P0_1", "48213");
    let mut dealloc = Vec::new();
    common::msg(&mut dealloc, b'Q', b"DEALLOCATE P0_1\0");
    let mut stmts = ClientStatements::default();
    if let Some(p) = b::share(&parse_msg) {
        stmts.insert("P0_1", Arc::new(p));
    }
    let mut out = BytesMut::with_capacity(4096);
    let server_name = "pgf_0123456789abcdef";
    match op {
        "frame_pgbench_batch" => repeat(n, || common::scan_headers(black_box(&batch))),
        "frame_reply_100_rows" => repeat(n, || common::scan_headers(black_box(&reply))),
        "frame_copy_64k" => repeat(n, || common::scan_headers(black_box(&copy))),
        "message_reply_100_rows" => repeat(n, || common::scan_messages(black_box(&reply))),
        "classify_short_select" => repeat(n, || {
            classify(
                black_box("SELECT id, name FROM users WHERE id = 42"),
                &policy,
            )
        }),
        "classify_pgbench_select" => {
            repeat(n, || classify(black_box(common::PGBENCH_SELECT), &policy))
        }
        "classify_long_select" => repeat(n, || classify(black_box(long.as_str()), &policy)),
        "parse_name" => repeat(n, || b::parse_name(black_box(&parse_msg)).map(str::len)),
        "share" => repeat(n, || b::share(black_box(&parse_msg))),
        "write_bind" => repeat(n, || {
            out.clear();
            b::write_bind(&mut out, black_box(&bind_msg), server_name)
        }),
        "bind_path" => repeat(n, || {
            out.clear();
            let p = b::bind_statement(black_box(&bind_msg)).and_then(|s| stmts.get(s));
            p.map(|p| b::write_bind(&mut out, &bind_msg, &p.server_name))
        }),
        "deallocate_name_miss" => {
            repeat(n, || b::deallocate_name(black_box(common::PGBENCH_SELECT)))
        }
        "rewrite_deallocate" => repeat(n, || b::rewrite_deallocate(black_box(&dealloc))),
        "pool_checkout_return" => pool(n, 1, 1),
        "pool_contended" => pool(n, 100, 20),
        _ => usage(),
    }
}

/// `n` checkouts in total, spread over `tasks` tasks sharing a pool of
/// `size` idle connections; a task holds its connection across a yield.
fn pool(n: u64, tasks: u64, size: usize) {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let idle = idle_pool(size).await.expect("loopback sockets");
        let deadline = Instant::now() + Duration::from_secs(3600);
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let pool = idle.pool.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..n / tasks {
                    let conn = pool.checkout(deadline).await.expect("checkout");
                    if tasks > 1 {
                        tokio::task::yield_now().await;
                    }
                    drop(black_box(conn));
                }
            }));
        }
        for h in handles {
            h.await.expect("checkout task");
        }
    });
}
