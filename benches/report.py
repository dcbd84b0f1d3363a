#!/usr/bin/env python3
"""Turns the raw results of benches/perf.sh into the ratio table against the
issue #8 targets (printed), benches/results/tps.svg and docs/benchmarks.md.

Inputs in --results: perf-results.tsv (one row per pgbench run), tail-*.log
(pgbench per-transaction logs of the 1000-client runs), strace-*.txt / .tx
(strace -c summaries and the transactions of that run), memory-*.json
(benches/idle_clients.py), failover-latest.md and ir-latest.md when present.
"""

import argparse
import collections
import glob
import json
import os
import re
import statistics
import sys

TARGET_LABEL = {
    "direct": "direct",
    "pgbouncer": "PgBouncer",
    "pgferry": "pgferry",
    "pgferry-auto": "pgferry route=auto",
    "floor": "null forwarder (floor)",
    "pgferry-ryw": "pgferry auto+read_your_writes",
    "pgferry-auto-local": "pgferry route=auto, primary only",
}


def load_runs(path):
    runs = collections.defaultdict(list)
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            key = (row["scenario"], row["workload"], int(row["clients"]), row["target"])
            runs[key].append(row)
    return runs


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Results:
    def __init__(self, runs):
        self.runs = runs

    def rows(self, sc, w, c, t):
        return self.runs.get((sc, w, c, t), [])

    def tps(self, sc, w, c, t):
        return median(num(r["tps"]) for r in self.rows(sc, w, c, t))

    def lat(self, sc, w, c, t):
        return median(num(r["lat_ms"]) for r in self.rows(sc, w, c, t))

    def cpu_us(self, sc, w, c, t):
        """Median over runs of the pooler's CPU µs per transaction."""
        vals = []
        for r in self.rows(sc, w, c, t):
            cpu, tx = num(r["cpu_s"]), num(r["tx"])
            if cpu is not None and tx:
                vals.append(cpu * 1e6 / tx)
        return median(vals)


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(v, spec="{:.2f}"):
    return "-" if v is None else spec.format(v)


# ---------------------------------------------------------------- tail

def cpu_window(path, rows):
    """The pooler's CPU per transaction (µs) between the two samples perf.sh's
    sample_cpu took in the middle of a tail run: the steady state, without
    the logins that dominate the whole run's figure. `rows`: (start µs,
    latency µs) of the run's transactions; those that ended in the window
    count. None without the samples."""
    try:
        with open(path) as f:
            samples = [tuple(int(v) for v in line.split()) for line in f if line.strip()]
    except (OSError, ValueError):
        return None
    if len(samples) != 2:
        return None
    (t0, c0), (t1, c1) = samples
    n = sum(1 for start, lat in rows if t0 <= start + lat < t1)
    if n == 0:
        return None
    return (c1 - c0) / os.sysconf("SC_CLK_TCK") * 1e6 / n


def tail_stats(results_dir, target, clients):
    """p50/p99 latency (ms) and per-client transaction counts over all rounds.

    The percentiles are taken over the steady state: transactions that started
    after every client had finished its first one. Before that, clients are
    still logging in (pgbench's -T includes the logins, and 1000 SCRAM logins
    take seconds of the poolers' and pgbench's CPU) and the first checkouts
    queue behind them; that ramp says how fast logins are, not how fair the
    line for server connections is. The same over all transactions is kept
    as p50_all/p99_all. Starvation counts use the whole run."""
    p50s, p99s, p50as, p99as, steady_n, starved, mins, cpus, files = [], [], [], [], [], [], [], [], 0
    for path in sorted(glob.glob(os.path.join(results_dir, f"tail-{target}-*.log"))):
        files += 1
        rows, per_client, first_end = [], collections.Counter(), {}
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    lat_us = int(parts[2])
                    end = int(parts[4]) * 1_000_000 + int(parts[5])
                    rows.append((end - lat_us, lat_us))
                    per_client[parts[0]] += 1
                    first_end[parts[0]] = min(first_end.get(parts[0], end), end)
        if not rows:
            continue
        lats = sorted(lat for _, lat in rows)
        p50as.append(lats[len(lats) // 2] / 1000)
        p99as.append(lats[min(len(lats) - 1, int(len(lats) * 0.99))] / 1000)
        ramp_end = max(first_end.values())
        steady = sorted(lat for start, lat in rows if start >= ramp_end)
        steady_n.append(len(steady))
        if steady:
            p50s.append(steady[len(steady) // 2] / 1000)
            p99s.append(steady[min(len(steady) - 1, int(len(steady) * 0.99))] / 1000)
        cpu = cpu_window(path.replace(f"tail-{target}-", f"tailcpu-{target}-")[:-len(".log")] + ".txt", rows)
        if cpu is not None:
            cpus.append(cpu)
        starved.append(clients - len(per_client))
        mins.append(min(per_client.values()) if len(per_client) == clients else 0)
    if not files or not p50as:
        return None
    return {
        "p50": median(p50s) if p50s else None,
        "p99": median(p99s) if p99s else None,
        "p50_all": median(p50as),
        "p99_all": median(p99as),
        "steady_n": median(steady_n),
        "starved": max(starved),
        "min_tx": min(mins),
        "cpu_us": median(cpus) if cpus else None,
    }


# ---------------------------------------------------------------- strace

def parse_strace(path):
    calls = {}
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and re.match(r"^[0-9.]+$", parts[0]) and parts[-1] != "total":
                name = parts[-1]
                ncalls = int(parts[3])
                errors = int(parts[4]) if len(parts) == 6 else 0
                calls[name] = (ncalls, errors)
    return calls


def strace_table(results_dir):
    data = {}
    for t in ("pgbouncer", "pgferry"):
        calls = parse_strace(os.path.join(results_dir, f"strace-{t}.txt"))
        txp = os.path.join(results_dir, f"strace-{t}.tx")
        tx = int(open(txp).read().strip() or 0) if os.path.exists(txp) else 0
        if calls and tx:
            data[t] = (calls, tx)
    if len(data) < 2:
        return None, None
    names = sorted(set(data["pgbouncer"][0]) | set(data["pgferry"][0]),
                   key=lambda n: -(data["pgferry"][0].get(n, (0, 0))[0] + data["pgbouncer"][0].get(n, (0, 0))[0]))
    lines = ["| syscall | PgBouncer calls/tx | PgBouncer errors/tx | pgferry calls/tx | pgferry errors/tx |",
             "|---|--:|--:|--:|--:|"]
    totals = {}
    for t in data:
        calls, tx = data[t]
        totals[t] = sum(c for c, _ in calls.values()) / tx
    for n in names:
        cells = []
        for t in ("pgbouncer", "pgferry"):
            calls, tx = data[t]
            c, e = calls.get(n, (0, 0))
            cells += [f"{c / tx:.2f}", f"{e / tx:.2f}"]
        if max(float(x) for x in cells) < 0.01:
            continue
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append(f"| **total** | **{totals['pgbouncer']:.2f}** | | **{totals['pgferry']:.2f}** | |")
    return "\n".join(lines), totals


# ---------------------------------------------------------------- memory

def memory(results_dir, target, probe="memory"):
    path = os.path.join(results_dir, f"{probe}-{target}.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


# ---------------------------------------------------------------- svg

def svg_chart(series, xs, path):
    """Line chart of TPS by client count (categorical x axis)."""
    w, h, left, right, top, bottom = 640, 360, 70, 150, 30, 50
    ymax = max((v for s in series.values() for v in s if v is not None), default=1)
    ymax = max(1, ymax) * 1.1
    pw, ph = w - left - right, h - top - bottom
    colors = {"direct": "#555555", "pgbouncer": "#1f77b4", "pgferry": "#d62728"}

    def px(i):
        return left + (pw * i / (len(xs) - 1) if len(xs) > 1 else pw / 2)

    def py(v):
        return top + ph - ph * v / ymax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">pgbench -S (simple protocol): TPS by client count</text>']
    for k in range(6):
        v = ymax * k / 5
        y = py(v)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    for i, x in enumerate(xs):
        out.append(f'<text x="{px(i):.1f}" y="{top + ph + 18}" text-anchor="middle">{x}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 10}" text-anchor="middle">clients</text>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>')
    for n, (name, vals) in enumerate(series.items()):
        color = colors.get(name, "#2ca02c")
        pts = [(px(i), py(v)) for i, v in enumerate(vals) if v is not None]
        if len(pts) > 1:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
        ly = top + 10 + 20 * n
        out.append(f'<line x1="{left + pw + 15}" y1="{ly}" x2="{left + pw + 35}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 40}" y="{ly + 4}">{TARGET_LABEL.get(name, name)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------- report

def build(args):
    meta = dict(m.split("=", 1) for m in args.meta)
    res = Results(load_runs(os.path.join(args.results, "perf-results.tsv")))
    checks = []  # (target text, measured text, ratio, limit, "<=" or ">=", note)

    def check(name, value, limit, op, detail="", note=""):
        if value is None:
            status = "not measured"
        elif (value <= limit) if op == "<=" else (value >= limit):
            status = "met"
        else:
            status = "**missed**"
        shown = fmt(value)
        # A value that rounds to the goal but misses it (1.504 against <= 1.5)
        # shows its third decimal, so the verdict does not look wrong.
        if value is not None and status != "met" and shown == f"{limit:.2f}":
            shown = f"{value:.3f}"
        checks.append((name, shown, f"{op} {limit}", status, detail, note))

    def floor_note(c):
        """The floor scenario's CPU per transaction of a proxy that does nothing, as a
        share of PgBouncer's in the same runs (None when not measured)."""
        z, b = res.cpu_us("floor", "select-simple", c, "floor"), res.cpu_us("floor", "select-simple", c, "pgbouncer")
        r = ratio(z, b)
        return f"a proxy doing nothing (floor scenario): {fmt(r)}" if r is not None else ""

    for w in ("select-simple", "select-extended"):
        for c in (10, 100):
            f, b = res.cpu_us("matrix", w, c, "pgferry"), res.cpu_us("matrix", w, c, "pgbouncer")
            check(f"CPU/tx pgferry ÷ PgBouncer, {w}, {c} clients", ratio(f, b), 0.8, "<=",
                  f"{fmt(f, '{:.1f}')} vs {fmt(b, '{:.1f}')} µs",
                  floor_note(c) if w == "select-simple" else "")
    for w, c, limit in (("select-simple", 10, 1.05), ("select-simple", 100, 1.05),
                        ("select-extended", 100, 1.25), ("tpcb-like", 10, 1.0), ("tpcb-like", 100, 1.0)):
        f, b = res.tps("matrix", w, c, "pgferry"), res.tps("matrix", w, c, "pgbouncer")
        check(f"TPS pgferry ÷ PgBouncer, {w}, {c} clients", ratio(f, b), limit, ">=",
              f"{fmt(f, '{:.0f}')} vs {fmt(b, '{:.0f}')}")
    f, d = res.tps("prepared", "select-prepared", 100, "pgferry"), res.tps("prepared", "select-prepared", 100, "direct")
    check("TPS -M prepared pgferry ÷ direct, 100 clients", ratio(f, d), 1.1, ">=",
          f"{fmt(f, '{:.0f}')} vs {fmt(d, '{:.0f}')}")
    ld, lb, lf = (res.lat("latency", "select-simple", 1, t) for t in ("direct", "pgbouncer", "pgferry"))
    added_f = lf - ld if lf is not None and ld is not None else None
    added_b = lb - ld if lb is not None and ld is not None else None
    # PgBouncer measured faster than direct means noise swamped the run: no verdict.
    check("added latency at 1 client, pgferry ÷ PgBouncer",
          ratio(added_f, added_b) if added_b is not None and added_b > 0 else None, 1.0, "<=",
          f"+{fmt(added_f and added_f * 1000, '{:.1f}')} vs +{fmt(added_b and added_b * 1000, '{:.1f}')} µs")
    tails = {t: tail_stats(args.results, t, int(meta.get("tail", 1000))) for t in ("pgbouncer", "pgferry")}
    tf = tails["pgferry"]
    check(f"p99 ÷ p50, {meta.get('tail', 1000)} clients on a pool of {meta.get('pool', 20)}",
          ratio(tf["p99"], tf["p50"]) if tf else None, 1.5, "<=",
          f"steady state: p50 {fmt(tf and tf['p50'])} ms, p99 {fmt(tf and tf['p99'])} ms; over all "
          f"transactions, logins included: {fmt(tf and ratio(tf['p99_all'], tf['p50_all']))}" if tf else "")
    check("clients without a single transaction (starvation)", tf["starved"] if tf else None, 0, "<=",
          f"fewest transactions of one client: {tf['min_tx']}" if tf else "")
    mf, mb = memory(args.results, "pgferry"), memory(args.results, "pgbouncer")
    per = mf["per_client_bytes"] / 1024 if mf and mf.get("per_client_bytes") is not None else None
    check(f"RSS growth per idle client (KiB), {meta.get('idle')} clients", per, 1.25, "<=",
          f"PgBouncer {fmt(mb and mb.get('per_client_bytes') / 1024)} KiB" if mb and mb.get("per_client_bytes") is not None else "")
    if mf:
        grown = mf["rss_full_kib"] - mf["rss_base_kib"]
        kept = (mf["rss_after_kib"] - mf["rss_base_kib"]) / grown if grown > 0 else 0.0
        check("memory kept after the idle clients left (share of growth)", kept, 0.25, "<=",
              f"RSS {mf['rss_base_kib']} → {mf['rss_full_kib']} → {mf['rss_after_kib']} KiB")
    else:
        check("memory kept after the idle clients left (share of growth)", None, 0.25, "<=")
    crowd = memory(args.results, "pgferry", "crowd")
    peers = memory(args.results, "pgferry", "peers")
    fdlimit = meta.get("fdlimit", "?")
    one = (f"; one process alone held {crowd['count'] - crowd.get('failed', 0):,} of {crowd['count']:,}"
           if crowd else "")
    if peers and peers.get("count", 0) >= 100000 and not (crowd and crowd.get("count", 0) >= 100000):
        n = peers.get("held", 0)
        held = peers.get("failed", 1) == 0 and n >= 100000
        checks.append(("100,000 idle clients held at once", f"{n:,}", "held",
                       f"met with {peers.get('processes')} processes" if held else "**missed**", "",
                       f"by {peers.get('processes')} pgferry processes on one port (so_reuseport), each within "
                       f"the fd limit of {fdlimit} per process{one}; {peers['per_client_bytes']} bytes each; "
                       f"first error: {peers.get('first_error')}"))
    elif crowd and crowd.get("count", 0) >= 100000:
        held = crowd.get("failed", 1) == 0
        checks.append(("100,000 idle clients held at once", "held" if held else "failed", "held",
                       "met" if held else "**missed**", "",
                       f"{crowd['per_client_bytes']} bytes each; first error: {crowd.get('first_error')}"))
    elif crowd:
        checks.append(("100,000 idle clients held at once", "-", "held", "not measured", "",
                       f"held {crowd['count'] - crowd.get('failed', 0):,} of {crowd['count']:,} at once "
                       f"({crowd['per_client_bytes']} bytes each), as many as the fd limit of {fdlimit} "
                       "leaves room for; raising it needs CAP_SYS_RESOURCE"))
    else:
        checks.append(("100,000 idle clients held at once", "-", "held", "not measured", "",
                       f"the fd limit here is {fdlimit} and cannot be raised without CAP_SYS_RESOURCE"))
    a, p = res.tps("route", "select-simple", 100, "pgferry-auto"), res.tps("route", "select-simple", 100, "pgferry")
    check("TPS route=auto ÷ route=primary, -S simple, 100 clients", ratio(a, p), 0.95, ">=",
          f"{fmt(a, '{:.0f}')} vs {fmt(p, '{:.0f}')}")
    y, n = res.tps("ryw", "tpcb-like", 100, "pgferry-ryw"), res.tps("ryw", "tpcb-like", 100, "pgferry-auto")
    check("TPS read_your_writes on ÷ off, tpcb-like, 100 clients", ratio(y, n), 0.95, ">=",
          f"{fmt(y, '{:.0f}')} vs {fmt(n, '{:.0f}')}")

    # console table
    width = max(len(c[0]) for c in checks)
    print(f"{'target':<{width}}  {'measured':>9}  {'goal':>7}  status")
    for name, val, goal, status, detail, note in checks:
        print(f"{name:<{width}}  {val:>9}  {goal:>7}  {status.strip('*')}  {detail} {note}".rstrip())

    # chart
    xs = [1, 10, 100, int(meta.get("tail", 1000))]
    series = {}
    for t in ("direct", "pgbouncer", "pgferry"):
        series[t] = [res.tps("latency", "select-simple", 1, t),
                     res.tps("matrix", "select-simple", 10, t),
                     res.tps("matrix", "select-simple", 100, t),
                     res.tps("tail", "select-simple", xs[3], t)]
    svg_path = os.path.join(args.results, "tps.svg")
    svg_chart(series, xs, svg_path)

    if not args.doc:
        return
    doc_dir = os.path.dirname(os.path.abspath(args.doc))
    svg_rel = os.path.relpath(svg_path, doc_dir)
    L = []
    L.append("# Benchmarks\n")
    L.append("Generated by `benches/perf.sh` (one command; `QUICK=1` for a short smoke run). Do not edit by "
             "hand: rerun it.\n")
    L.append(f"- date: {meta.get('date')}; machine: {meta.get('machine')}; shared with Postgres, pgbench "
             "and the poolers, and noisy: **read the ratios, not the absolute numbers**")
    L.append(f"- {meta.get('postgres')}, {meta.get('pgbouncer')}, pgferry release build; primary + 2 streaming "
             "replicas on 127.0.0.1 (fsync=off)")
    L.append(f"- pgbench -s {meta.get('scale')}, -j {meta.get('threads')}, {meta.get('duration')} s per run, "
             f"{meta.get('rounds')} rounds with the order of the targets rotated every round; medians")
    L.append(f"- poolers: transaction pooling, pool size {meta.get('pool')}, scram-sha-256 (idle-client test: trust)")
    L.append(f"- pgferry: [proxy] workers = {meta.get('workers', 'default')}, cache_unnamed_statements = "
             f"{meta.get('cache_unnamed_statements', 'false')} (unnamed statements kept prepared: what "
             f"`-M extended` gains over PgBouncer; off in pgferry's defaults), cpu_policy = "
             f"{meta.get('cpu_policy', 'normal')} (\"batch\": SCHED_BATCH, no wake-up preemption of the "
             f"processes pgferry shares the cores with; \"normal\" in pgferry's defaults), nice = "
             f"{meta.get('nice', '0')} (0 in pgferry's defaults)")
    if meta.get('nice', '0') != '0' or meta.get('bouncer_nice', '0') != '0':
        L.append(f"- both poolers at the same priority: pgferry's `nice` setting is {meta.get('nice', '?')} and "
                 f"PgBouncer, which has no such setting, is reniced to {meta.get('bouncer_nice', '?')} "
                 "(nice values in effect, read back from the processes)")
    L.append("- CPU per transaction: utime+stime of the pooler process (all threads) from /proc/PID/stat over "
             "the run ÷ transactions pgbench processed\n")
    L.append("## Targets (issue #8)\n")
    L.append("| target | measured | goal | status | detail |")
    L.append("|---|--:|--:|---|---|")
    for name, val, goal, status, detail, note in checks:
        L.append(f"| {name} | {val} | {goal} | {status} | {'; '.join(x for x in (detail, note) if x)} |")
    L.append("")
    L.append(f"![TPS by client count]({svg_rel})\n")
    L.append("## Throughput and CPU per transaction\n")
    L.append("| workload | clients | direct tps | PgBouncer tps | pgferry tps | pgferry ÷ PgBouncer | "
             "pgferry ÷ direct | PgBouncer CPU µs/tx | pgferry CPU µs/tx | CPU ratio |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    rows = [("latency", "select-simple", 1)] + [("matrix", w, c) for w in
                                                   ("select-simple", "select-extended", "tpcb-like") for c in (10, 100)]
    rows += [("prepared", "select-prepared", 100), ("tail", "select-simple", xs[3])]
    for sc, w, c in rows:
        d, b, f = (res.tps(sc, w, c, t) for t in ("direct", "pgbouncer", "pgferry"))
        cb, cf = res.cpu_us(sc, w, c, "pgbouncer"), res.cpu_us(sc, w, c, "pgferry")
        if d is None and b is None and f is None:
            continue
        L.append(f"| {w} | {c} | {fmt(d, '{:.0f}')} | {fmt(b, '{:.0f}')} | {fmt(f, '{:.0f}')} | "
                 f"{fmt(ratio(f, b))} | {fmt(ratio(f, d))} | {fmt(cb, '{:.1f}')} | {fmt(cf, '{:.1f}')} | "
                 f"{fmt(ratio(cf, cb))} |")
    L.append("\nWorkloads: select-simple `-S -M simple`, select-extended `-S -M extended`, select-prepared "
             "`-S -M prepared` (PgBouncer 1.18 cannot run it in transaction mode), tpcb-like `-M simple`.\n")
    floor_rows = [c for c in (10, 100) if res.tps("floor", "select-simple", c, "floor") is not None]
    if floor_rows:
        L.append("## The floor: a proxy that does nothing (-S simple)\n")
        L.append("| clients | PgBouncer tps | pgferry tps | floor tps | PgBouncer CPU µs/tx | pgferry CPU µs/tx "
                 "| floor CPU µs/tx | pgferry ÷ PgBouncer, CPU | floor ÷ PgBouncer, CPU |")
        L.append("|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for c in floor_rows:
            tb, tf, tz = (res.tps("floor", "select-simple", c, t) for t in ("pgbouncer", "pgferry", "floor"))
            cb, cf, cz = (res.cpu_us("floor", "select-simple", c, t) for t in ("pgbouncer", "pgferry", "floor"))
            L.append(f"| {c} | {fmt(tb, '{:.0f}')} | {fmt(tf, '{:.0f}')} | {fmt(tz, '{:.0f}')} | "
                     f"{fmt(cb, '{:.1f}')} | {fmt(cf, '{:.1f}')} | {fmt(cz, '{:.1f}')} | "
                     f"{fmt(ratio(cf, cb))} | {fmt(ratio(cz, cb))} |")
        L.append("\nThe floor is `benches/floor/null_forwarder.rs`: one thread, one epoll loop, each client "
                 "paired with a server connection of its own (no pooling: at 100 clients Postgres runs 100 "
                 "backends behind it, against the poolers' 20), every byte passed on as it arrives without "
                 "being looked at, one read per readiness edge. Its CPU per transaction is what the kernel "
                 "charges any proxy on this machine for receiving and sending each message once, plus the "
                 "least event loop there is: issue #8's CPU target (pgferry ≤ 0.8× PgBouncer) can be read "
                 "against it. Same runs, same rotation and priority as the poolers.\n")
    L.append("## Latency at 1 client (-S simple)\n")
    L.append("| target | mean latency ms | added over direct µs |")
    L.append("|---|--:|--:|")
    for t, v in (("direct", ld), ("pgbouncer", lb), ("pgferry", lf)):
        add = (v - ld) * 1000 if v is not None and ld is not None else None
        L.append(f"| {TARGET_LABEL[t]} | {fmt(v, '{:.3f}')} | {fmt(add, '{:.1f}')} |")
    L.append("")
    L.append(f"## {meta.get('tail')} clients on a pool of {meta.get('pool')} (-S simple)\n")
    L.append("| target | p50 ms | p99 ms | p99 ÷ p50 | steady-state transactions | p99 ÷ p50, all transactions "
             "| clients with no transaction | fewest tx of one client | CPU µs/tx, steady state |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for t in ("pgbouncer", "pgferry"):
        s = tails[t]
        if s:
            L.append(f"| {TARGET_LABEL[t]} | {fmt(s['p50'])} | {fmt(s['p99'])} | {fmt(ratio(s['p99'], s['p50']))} "
                     f"| {fmt(s['steady_n'], '{:.0f}')} | {fmt(ratio(s['p99_all'], s['p50_all']))} "
                     f"| {s['starved']} | {s['min_tx']} | {fmt(s['cpu_us'], '{:.1f}')} |")
    L.append(f"\nMedians over the rounds of each round's p50/p99 from pgbench's per-transaction log (`-l`), "
             f"{meta.get('tail_duration', '?')} s per run. pgbench's `-T` includes logging the clients in, and "
             f"{meta.get('tail')} SCRAM logins take seconds of the poolers' and pgbench's CPU; p50 and p99 are "
             "therefore taken over the steady state, the transactions that started after every client had "
             "finished its first one (their number is in the table). The ratio over all transactions, "
             "login ramp included, is beside it; starvation counts use the whole run. The last column is the "
             "pooler's own CPU per transaction over the middle of each run (from half of it to nine tenths, "
             "the transactions that ended then), without the logins; the throughput table's "
             f"{meta.get('tail')}-client row divides the whole run's CPU, logins included.\n")
    L.append("## Syscalls per transaction (strace -c -f, -S simple, 100 clients)\n")
    table, totals = strace_table(args.results)
    if table:
        L.append(table)
        L.append("\nstrace slows both poolers down, so only the counts per transaction mean anything here. "
                 "`errors` are calls that failed, for reads almost always EAGAIN: a read attempted on a "
                 "socket with nothing to read.\n")
    else:
        L.append("(not measured in this run)\n")
    L.append("## Idle clients and memory\n")
    L.append("| target | idle clients | RSS after 100 KiB | RSS with all KiB | per client bytes | RSS after they left KiB |")
    L.append("|---|--:|--:|--:|--:|--:|")
    worked = memory(args.results, "pgferry", "worked")
    for label, m in (("PgBouncer", mb), ("pgferry", mf), ("pgferry, after one query each", worked),
                     ("pgferry, most held at once", crowd),
                     (f"pgferry, {peers.get('processes') if peers else '?'} processes on one port", peers)):
        if m:
            L.append(f"| {label} | {m['count']} | {m['rss_base_kib']} | {m['rss_full_kib']} | "
                     f"{m['per_client_bytes']} | {m['rss_after_kib']} |")
    L.append("\n`benches/idle_clients.py` logs clients in (trust authentication, spread over 127.0.0.1–8) and "
             "leaves them idle after their first ReadyForQuery; RSS is VmRSS from /proc/PID/status. "
             "After one query: each client ran `SELECT 1` after logging in, then idled. "
             "The row \"most held at once\", when there is one, is the most idle clients one pgferry held at "
             "once in this run: 100,000, or as many as the limit on open files leaves room for (here "
             f"{fdlimit} per process; raising the hard limit needs CAP_SYS_RESOURCE). When one process "
             "cannot hold 100,000, the last row is 100,000 held at once by several pgferry processes "
             "listening on one port (`so_reuseport`, with `peer_id`/`[peers]`), each within the limit, "
             "from as many probe processes over 127.0.0.1–16; RSS is their sum.\n")
    L.append("## Routing cost\n")
    L.append("| comparison | workload | clients | tps | tps | ratio |")
    L.append("|---|---|--:|--:|--:|--:|")
    L.append(f"| route=auto vs route=primary | select-simple | 100 | {fmt(a, '{:.0f}')} | {fmt(p, '{:.0f}')} | "
             f"{fmt(ratio(a, p))} |")
    al = res.tps("route", "select-simple", 100, "pgferry-auto-local")
    L.append(f"| route=auto with the primary as the only host vs route=primary | select-simple | 100 | "
             f"{fmt(al, '{:.0f}')} | {fmt(p, '{:.0f}')} | {fmt(ratio(al, p))} |")
    L.append(f"| read_your_writes on vs off (route=auto) | tpcb-like | 100 | {fmt(y, '{:.0f}')} | "
             f"{fmt(n, '{:.0f}')} | {fmt(ratio(y, n))} |")
    L.append("\nWith route=auto the selects run on the two replicas, so on this 2-core machine the "
             "comparison also measures how the same two cores cope with three busy Postgres instances. "
             "The second row isolates pgferry's own routing work: the same route=auto database with "
             "the primary as its only host, so every select is classified and routed, finds no "
             "replica and runs on the primary (`replica_fallback = \"primary\"`).\n")
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks-notes.md")
    if os.path.exists(notes):
        L.append(open(notes).read().strip() + "\n")
    ir = os.path.join(args.results, "ir-latest.md")
    if os.path.exists(ir):
        L.append("## Micro-benchmarks (instruction counts)\n")
        L.append(open(ir).read().strip() + "\n")
    fo = os.path.join(args.results, "failover-latest.md")
    if os.path.exists(fo):
        text = open(fo).read()
        text = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.M)
        L.append(text.strip() + "\n")
    with open(args.doc, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")
    print(f"wrote {args.doc} and {svg_path}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--doc", default="")
    p.add_argument("--meta", action="append", default=[])
    build(p.parse_args())


if __name__ == "__main__":
    main()
