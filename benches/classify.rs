//! Micro-benchmarks for the read-only SQL classifier.
//!
//! Run: `cargo bench --bench classify -- --warm-up-time 1 --measurement-time 2`

mod common;

use std::hint::black_box;

use common::long_select;
use criterion::{criterion_group, criterion_main, Criterion};
use pgferry::router::classify::{classify, route_hint, tx_effect, FunctionPolicy};

fn benches(c: &mut Criterion) {
    let policy = FunctionPolicy::default();
    let long = long_select();
    assert!(long.len() >= 2000, "long query is {} bytes", long.len());

    let cases: [(&str, &str); 4] = [
        (
            "classify/short_select",
            "SELECT id, name FROM users WHERE id = 42",
        ),
        (
            "classify/pgbench_select",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
        ),
        ("classify/select_2kb", long.as_str()),
        (
            "classify/with_delete",
            "WITH d AS (DELETE FROM jobs WHERE done RETURNING id) SELECT count(*) FROM d",
        ),
    ];
    for (name, sql) in cases {
        c.bench_function(name, |b| b.iter(|| classify(black_box(sql), &policy)));
    }

    let allow = FunctionPolicy::allow_list(&["now", "date_trunc", "count", "sum", "avg", "max"]);
    c.bench_function("classify/select_2kb_allow_list", |b| {
        b.iter(|| classify(black_box(long.as_str()), &allow))
    });

    let hinted = "/* pgferry:replica */ SELECT abalance FROM pgbench_accounts WHERE aid = $1";
    c.bench_function("route_hint/hinted", |b| {
        b.iter(|| route_hint(black_box(hinted)))
    });
    c.bench_function("tx_effect/begin_read_only", |b| {
        b.iter(|| tx_effect(black_box("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")))
    });
}

criterion_group!(classify_benches, benches);
criterion_main!(classify_benches);
