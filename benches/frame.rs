//! Micro-benchmarks for frame scanning: walking client batches and server
//! replies by their 5-byte header, as the forwarding path does.
//!
//! Run: `cargo bench --bench frame -- --warm-up-time 1 --measurement-time 2`

mod common;

use std::hint::black_box;

use common::{copy_stream, pgbench_batch, scan_headers, scan_messages, server_reply};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn benches(c: &mut Criterion) {
    let cases = [
        ("pgbench_s_extended", pgbench_batch()),
        ("reply_1_row", server_reply(1)),
        ("reply_100_rows", server_reply(100)),
        ("copy_64k", copy_stream(64 * 1024)),
    ];
    let mut g = c.benchmark_group("frame");
    for (name, buf) in &cases {
        // Every fixture must be whole: a scan that stops early measures nothing.
        let (n, _) = scan_headers(buf);
        assert_eq!(n, scan_messages(buf).0, "{name}: scans disagree");
        assert!(n >= 5, "{name}: only {n} messages");
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(format!("headers/{name}"), |b| {
            b.iter(|| scan_headers(black_box(buf)))
        });
        g.bench_function(format!("messages/{name}"), |b| {
            b.iter(|| scan_messages(black_box(buf)))
        });
    }
    g.finish();
}

criterion_group!(frame_benches, benches);
criterion_main!(frame_benches);
