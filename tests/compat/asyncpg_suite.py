"""asyncpg through pgferry in transaction mode (run by tests/compat/run).

PGFERRY_PORT: a pgferry with a pool of 10; PGFERRY_POOL5_PORT: one with a
pool of 5. asyncpg keeps its statement cache on (the default), so every query
is a named server-side statement (__asyncpg_stmt_N__) that pgferry has to make
exist on whichever server connection the next transaction gets. Each check
asserts on results, not just on the absence of errors.
"""
import asyncio
import os
import sys

import asyncpg

PORT = int(os.environ["PGFERRY_PORT"])
POOL5 = int(os.environ["PGFERRY_POOL5_PORT"])
DSN = dict(host="127.0.0.1", user="app", password="secret", database="app")


async def connect(port=PORT, **kw):
    return await asyncpg.connect(port=port, **DSN, **kw)


async def statement_cache():
    conn = await connect()
    try:
        for i in range(50):
            row = await conn.fetchrow("SELECT $1::int * 2 AS d, $2::text AS t", i, f"v{i}")
            assert (row["d"], row["t"]) == (i * 2, f"v{i}"), row
        # The same text again: served from asyncpg's cache (no new Parse).
        stmt = await conn.prepare("SELECT sum(x) FROM generate_series(1, $1::int) x")
        assert await stmt.fetchval(100) == 5050
        assert await stmt.fetchval(10) == 55
        async with conn.transaction():
            assert await stmt.fetchval(4) == 10
            assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
        # Types that need introspection (arrays, jsonb codec round trip).
        assert await conn.fetchval("SELECT $1::int[]", [1, 2, 3]) == [1, 2, 3]
        assert await conn.fetchval("SELECT $1::jsonb::text", '{"a": 1}') == '{"a": 1}'
    finally:
        await conn.close()


async def executemany():
    conn = await connect()
    try:
        await conn.execute("DROP TABLE IF EXISTS compat_amany")
        await conn.execute("CREATE TABLE compat_amany (id int primary key, v text)")
        await conn.executemany(
            "INSERT INTO compat_amany VALUES ($1, $2)", [(i, f"r{i}") for i in range(1000)]
        )
        row = await conn.fetchrow("SELECT count(*), min(v), max(id) FROM compat_amany")
        assert tuple(row) == (1000, "r0", 999), row
        # executemany is atomic: a duplicate in the middle leaves nothing behind.
        try:
            await conn.executemany(
                "INSERT INTO compat_amany VALUES ($1, $2)", [(2000, "a"), (5, "dup"), (2001, "b")]
            )
        except asyncpg.UniqueViolationError:
            pass
        else:
            raise AssertionError("the duplicate key must fail")
        assert await conn.fetchval("SELECT count(*) FROM compat_amany WHERE id >= 2000") == 0
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def copy_records():
    conn = await connect()
    try:
        await conn.execute("DROP TABLE IF EXISTS compat_acopy")
        await conn.execute("CREATE TABLE compat_acopy (id int, name text, score float8)")
        records = [(i, f"name {i}", i / 4) for i in range(5000)]
        # asyncpg first prepares "SELECT * FROM compat_acopy LIMIT 1" with
        # Parse/Describe/Flush (no Sync), then sends the COPY as a simple
        # Query in the same unsynced batch.
        try:
            status = await asyncio.wait_for(
                conn.copy_records_to_table("compat_acopy", records=records), 15
            )
        except asyncio.TimeoutError:
            conn.terminate()
            raise AssertionError(
                "copy_records_to_table hung: the CopyData after the COPY Query (which "
                "follows an unsynced Parse/Describe/Flush) never reached the server"
            ) from None
        assert status == "COPY 5000", status
        rows = await conn.fetch("SELECT id, name, score FROM compat_acopy ORDER BY id")
        assert [tuple(r) for r in rows] == records, rows[:2]
        # And back out, as text.
        chunks = []

        async def sink(data):
            chunks.append(data)

        await conn.copy_from_query("SELECT id, name FROM compat_acopy WHERE id < 3 ORDER BY id", output=sink)
        assert b"".join(chunks) == b"0\tname 0\n1\tname 1\n2\tname 2\n", chunks
    finally:
        if not conn.is_closed():
            await conn.close(timeout=10)


async def server_settings():
    settings = {"application_name": "compat-asyncpg", "search_path": "pg_catalog, public"}
    # Two connections with different startup settings over the pool of 5 that
    # other clients share too: each keeps its own.
    a = await connect(POOL5, server_settings=settings)
    b = await connect(POOL5, server_settings={"application_name": "compat-other"})
    try:
        for _ in range(5):
            assert await a.fetchval("SHOW application_name") == "compat-asyncpg"
            assert await a.fetchval("SELECT current_setting('search_path')") == "pg_catalog, public"
            assert await b.fetchval("SHOW application_name") == "compat-other"
            assert await b.fetchval("SELECT current_schemas(false)::text") == "{public}"
            assert await a.fetchval("SELECT current_schemas(false)::text") == "{pg_catalog,public}"
        assert a.get_settings().application_name == "compat-asyncpg"
    finally:
        await a.close()
        await b.close()


async def pool_reset():
    # Releasing a connection to an asyncpg pool runs its reset query, one
    # simple Query of several statements ending in RESET ALL: on Postgres the
    # settings return to the values given at connect time.
    settings = {"application_name": "compat-reset", "search_path": "pg_catalog, public"}
    pool = await asyncpg.create_pool(port=POOL5, **DSN, min_size=2, max_size=2, server_settings=settings)
    try:
        for _ in range(3):
            async with pool.acquire() as c:
                await c.execute("SET application_name = 'changed'")
                await c.execute("SET search_path = public")
                assert await c.fetchval("SHOW application_name") == "changed"
            async with pool.acquire() as c:
                got = (await c.fetchval("SHOW application_name"), await c.fetchval("SHOW search_path"))
                assert got == ("compat-reset", "pg_catalog, public"), (
                    "after RESET ALL inside a multi-statement Query the startup "
                    f"settings are lost: {got}"
                )
    finally:
        await asyncio.wait_for(pool.close(), 30)
    # A later client asking for the same search_path must get it too.
    c = await connect(POOL5, server_settings={"search_path": "pg_catalog, public"})
    try:
        got = await c.fetchval("SHOW search_path")
        assert got == "pg_catalog, public", f"a later client's search_path is {got!r}"
    finally:
        await c.close()


async def pool_50_over_5():
    conn = await connect(POOL5)
    try:
        await conn.execute("DROP TABLE IF EXISTS compat_apool")
        await conn.execute("CREATE TABLE compat_apool (worker int, n int, v bigint)")
        await conn.execute("DROP TABLE IF EXISTS compat_acounter")
        await conn.execute("CREATE TABLE compat_acounter (id int primary key, c bigint)")
        await conn.execute("INSERT INTO compat_acounter VALUES (1, 0)")
    finally:
        await conn.close()

    pool = await asyncpg.create_pool(port=POOL5, **DSN, min_size=50, max_size=50)
    rounds = 10
    try:
        assert pool.get_size() == 50, pool.get_size()

        async def worker(w):
            for n in range(rounds):
                async with pool.acquire() as c:
                    # A prepared query outside a transaction...
                    got = await c.fetchval("SELECT $1::bigint * 1000 + $2::int", w, n)
                    assert got == w * 1000 + n, (w, n, got)
                    # ...and a transaction of several prepared statements.
                    async with c.transaction():
                        await c.execute("INSERT INTO compat_apool VALUES ($1, $2, $3)", w, n, got)
                        await c.execute("UPDATE compat_acounter SET c = c + $1 WHERE id = 1", 1)
                        mine = await c.fetchval("SELECT count(*) FROM compat_apool WHERE worker = $1", w)
                        assert mine == n + 1, (w, n, mine)
                    # A rolled back transaction leaves nothing.
                    tr = c.transaction()
                    await tr.start()
                    await c.execute("INSERT INTO compat_apool VALUES ($1, -1, 0)", w)
                    await tr.rollback()

        # Hold all 50 connections at once first: 50 clients, 5 servers.
        held = [await pool.acquire() for _ in range(50)]
        vals = await asyncio.gather(*(c.fetchval("SELECT $1::int", i) for i, c in enumerate(held)))
        assert vals == list(range(50)), vals
        for c in held:
            await pool.release(c)

        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(50))), 120)
        async with pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM compat_apool") == 50 * rounds
            assert await c.fetchval("SELECT count(*) FROM compat_apool WHERE n = -1") == 0
            assert await c.fetchval("SELECT c FROM compat_acounter WHERE id = 1") == 50 * rounds
            assert await c.fetchval("SELECT sum(v) FROM compat_apool") == sum(
                w * 1000 + n for w in range(50) for n in range(rounds)
            )
    finally:
        await asyncio.wait_for(pool.close(), 30)


CHECKS = [statement_cache, executemany, copy_records, server_settings, pool_reset, pool_50_over_5]


async def main():
    passed = failed = 0
    for check in CHECKS:
        try:
            await asyncio.wait_for(check(), 60)
            print(f"ok   asyncpg {check.__name__}", flush=True)
            passed += 1
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"FAIL asyncpg {check.__name__}: {type(e).__name__}: {e}"[:2000], flush=True)
            failed += 1
    print(f"asyncpg: {passed} passed, {failed} failed")
    return failed


sys.exit(1 if asyncio.run(main()) else 0)
