//! Micro-benchmarks for the prepared-statement rewriting done per message
//! when statements are shared across server connections
//! (`client::prepared`, reached through `pgferry::bench`).
//!
//! Run: `cargo bench --features bench-internals --bench rewrite -- --warm-up-time 1 --measurement-time 2`

mod common;

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use common::{bind, parse, PGBENCH_SELECT};
use criterion::{criterion_group, criterion_main, Criterion};
use pgferry::bench::{self as b, ClientStatements};

const SERVER_NAME: &str = "pgf_0123456789abcdef";

fn benches(c: &mut Criterion) {
    let parse_msg = parse("P0_1", PGBENCH_SELECT);
    let bind_msg = bind("P0_1", "48213");
    let mut dealloc_query = Vec::new();
    common::msg(&mut dealloc_query, b'Q', b"DEALLOCATE P0_1\0");
    let mut stmts = ClientStatements::default();
    let shared = Arc::new(b::share(&parse_msg).expect("fixture Parse is well-formed"));
    stmts.insert("P0_1", shared.clone());
    let mut out = BytesMut::with_capacity(4096);

    let mut g = c.benchmark_group("prepared");
    g.bench_function("parse_name", |x| {
        x.iter(|| b::parse_name(black_box(&parse_msg)))
    });
    g.bench_function("share", |x| x.iter(|| b::share(black_box(&parse_msg))));
    g.bench_function("bind_statement", |x| {
        x.iter(|| b::bind_statement(black_box(&bind_msg)))
    });
    g.bench_function("write_bind", |x| {
        x.iter(|| {
            out.clear();
            b::write_bind(&mut out, black_box(&bind_msg), SERVER_NAME)
        })
    });
    g.bench_function("rewrite_bind", |x| {
        x.iter(|| b::rewrite_bind(black_box(&bind_msg), SERVER_NAME))
    });
    // What the pump does for each Bind of a shared statement: find the
    // client's name, look it up, write the rewritten Bind out.
    g.bench_function("bind_path", |x| {
        x.iter(|| {
            out.clear();
            let p = b::bind_statement(black_box(&bind_msg)).and_then(|n| stmts.get(n));
            p.map(|p| b::write_bind(&mut out, &bind_msg, &p.server_name))
        })
    });
    g.bench_function("statement_message", |x| {
        x.iter(|| b::statement_message(b'D', black_box(SERVER_NAME)))
    });
    // Every Query and Parse text is checked for DEALLOCATE: the common case
    // is a miss.
    g.bench_function("deallocate_name/miss", |x| {
        x.iter(|| b::deallocate_name(black_box(PGBENCH_SELECT)))
    });
    g.bench_function("deallocate_name/hit", |x| {
        x.iter(|| b::deallocate_name(black_box("DEALLOCATE P0_1")))
    });
    g.bench_function("rewrite_deallocate", |x| {
        x.iter(|| b::rewrite_deallocate(black_box(&dealloc_query)))
    });
    g.finish();
}

criterion_group!(rewrite_benches, benches);
criterion_main!(rewrite_benches);
