"""psycopg 3 through pgferry in transaction mode (run by tests/compat/run).

PGFERRY_PORT: a pgferry with a pool of 10; PGFERRY_SMALL_PORT: one with a pool
of 2 and cache_unnamed_statements on. Each check asserts on results, not just on the absence of errors.
"""
import os
import sys
import threading
import time

import psycopg

PORT = int(os.environ["PGFERRY_PORT"])
SMALL = int(os.environ["PGFERRY_SMALL_PORT"])


def connect(port=PORT, **kw):
    return psycopg.connect(host="127.0.0.1", port=port, user="app", password="secret", dbname="app", **kw)


def prepared_statements():
    # prepare_threshold=0: every query is a named server-side statement.
    with connect(prepare_threshold=0, autocommit=True) as conn:
        for i in range(50):
            row = conn.execute("SELECT %s::int * 2, %s::text", (i, f"v{i}")).fetchone()
            assert row == (i * 2, f"v{i}"), row
        with conn.transaction():
            total = conn.execute("SELECT sum(x) FROM generate_series(1, %s) x", (100,)).fetchone()[0]
            assert total == 5050


def pipeline():
    with connect(prepare_threshold=0, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS compat_pipe")
        conn.execute("CREATE TABLE compat_pipe (id int primary key, v text)")
        with conn.pipeline():
            cur = conn.cursor()
            for i in range(100):
                cur.execute("INSERT INTO compat_pipe VALUES (%s, %s)", (i, f"r{i}"))
            cur.execute("SELECT count(*), min(v), max(id) FROM compat_pipe")
            row = cur.fetchone()
        assert row == (100, "r0", 99), row
        # An error in the middle of a pipeline: later statements are skipped,
        # the connection stays usable.
        try:
            with conn.pipeline():
                conn.execute("INSERT INTO compat_pipe VALUES (1000, 'ok')")
                conn.execute("INSERT INTO compat_pipe VALUES (1, 'duplicate')")
                conn.execute("INSERT INTO compat_pipe VALUES (1001, 'skipped')")
        except psycopg.errors.UniqueViolation:
            pass
        else:
            raise AssertionError("the duplicate key must fail")
        n = conn.execute("SELECT count(*) FROM compat_pipe WHERE id >= 1000").fetchone()[0]
        assert n in (0, 1), n  # autocommit: the first insert may have committed
        assert conn.execute("SELECT 1").fetchone() == (1,)


def copy():
    with connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS compat_pcopy")
        conn.execute("CREATE TABLE compat_pcopy (id int, name text)")
        with conn.cursor() as cur:
            with cur.copy("COPY compat_pcopy FROM STDIN") as cp:
                for i in range(5000):
                    cp.write_row((i, f"name {i}"))
            out = []
            with cur.copy("COPY (SELECT * FROM compat_pcopy ORDER BY id) TO STDOUT") as cp:
                for row in cp.rows():
                    out.append(row)
        assert len(out) == 5000 and out[0] == ("0", "name 0") and out[-1] == ("4999", "name 4999"), out[:2]


def listen_notify():
    with connect(autocommit=True) as listener, connect(autocommit=True) as sender:
        listener.execute("LISTEN compat_chan")
        got = []

        def send():
            time.sleep(0.3)
            for i in range(3):
                sender.execute("SELECT pg_notify('compat_chan', %s)", (f"m{i}",))

        t = threading.Thread(target=send)
        t.start()
        for n in listener.notifies(timeout=10, stop_after=3):
            got.append(n.payload)
        t.join()
        assert got == ["m0", "m1", "m2"], got


def search_path_isolation():
    # 20 connections over a pool of 2: each keeps its own search_path.
    conns = [connect(SMALL, autocommit=True, prepare_threshold=0) for _ in range(20)]
    try:
        for i, c in enumerate(conns):
            if i % 2 == 0:
                c.execute("SET search_path = pg_catalog, public")
        for _ in range(3):
            for i, c in enumerate(conns):
                schemas = c.execute("SELECT current_schemas(false)::text").fetchone()[0]
                expected = "{pg_catalog,public}" if i % 2 == 0 else "{public}"
                assert schemas == expected, (i, schemas)
    finally:
        for c in conns:
            c.close()


def cached_unnamed_statements():
    # prepare_threshold=None: psycopg never names a statement, every query is an
    # unnamed Parse/Bind/Execute, which this pgferry keeps prepared. 8 threads with
    # a connection each over a pool of 2, plus a pipeline, all checking results.
    errors = []

    def worker(n):
        try:
            with connect(SMALL, autocommit=True, prepare_threshold=None) as conn:
                for i in range(200):
                    row = conn.execute("SELECT %s::int * 3, %s::text || 'x'", (i + n, f"w{n}")).fetchone()
                    assert row == ((i + n) * 3, f"w{n}x"), row
                    if i % 50 == 0:
                        conn.execute("SELECT 1")
                with conn.pipeline():
                    curs = [conn.execute("SELECT %s::int + 1", (k,)) for k in range(20)]
                got = [c.fetchone()[0] for c in curs]
                assert got == [k + 1 for k in range(20)], got
        except Exception as e:  # noqa: BLE001 - collected and re-raised below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


CHECKS = [prepared_statements, pipeline, copy, listen_notify, search_path_isolation, cached_unnamed_statements]

passed = failed = 0
for check in CHECKS:
    try:
        check()
        print(f"ok   psycopg {check.__name__}")
        passed += 1
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"FAIL psycopg {check.__name__}: {type(e).__name__}: {e}")
        failed += 1
print(f"psycopg: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
