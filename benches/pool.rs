//! Micro-benchmarks for pool checkout and return (`Pool::checkout`, the
//! guard's drop). The pool's idle connections are connected 127.0.0.1
//! socket pairs that never carry traffic (`pgferry::bench::idle_pool`), so
//! no Postgres server is needed.
//!
//! Run: `cargo bench --features bench-internals --bench pool -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use pgferry::bench::idle_pool;
use pgferry::pool::Pool;
use tokio::runtime::{Builder, Runtime};

const TASKS: u64 = 100;
const POOL_SIZE: usize = 20;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// `per_task` checkouts in each of `TASKS` tasks, each holding its
/// connection across a yield so that others queue behind it.
async fn contended(pool: &Arc<Pool>, per_task: u64) {
    let mut tasks = Vec::with_capacity(TASKS as usize);
    for _ in 0..TASKS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let conn = pool.checkout(deadline()).await.expect("checkout");
                tokio::task::yield_now().await;
                drop(black_box(conn));
            }
        }));
    }
    for t in tasks {
        t.await.expect("checkout task");
    }
}

fn contended_bench(c: &mut Criterion, name: &str, rt: &Runtime) {
    let idle = rt.block_on(idle_pool(POOL_SIZE)).expect("loopback sockets");
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS);
            let start = Instant::now();
            rt.block_on(contended(&idle.pool, per_task));
            // Report the time of `iters` checkouts, not of the rounded-up run.
            start
                .elapsed()
                .mul_f64(iters as f64 / (per_task * TASKS) as f64)
        })
    });
}

fn benches(c: &mut Criterion) {
    let current = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let idle = current.block_on(idle_pool(1)).expect("loopback sockets");
    c.bench_function("pool/checkout_return/uncontended", |b| {
        b.iter_custom(|iters| {
            current.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let conn = idle.pool.checkout(deadline()).await.expect("idle conn");
                    drop(black_box(conn));
                }
                start.elapsed()
            })
        })
    });
    contended_bench(
        c,
        "pool/checkout_return/100_tasks_20_conns/current_thread",
        &current,
    );
    let multi = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    contended_bench(
        c,
        "pool/checkout_return/100_tasks_20_conns/2_workers",
        &multi,
    );
}

criterion_group!(pool_benches, benches);
criterion_main!(pool_benches);
