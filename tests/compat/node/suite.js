// node-postgres (pg + pg-cursor) through pgferry in transaction mode
// (run by tests/compat/run with NODE_PATH pointing at the installed modules).
//
// PGFERRY_PORT: a pgferry with a pool of 10; PGFERRY_SMALL_PORT: one with a
// pool of 2. Each check asserts on results, not just on the absence of errors.
'use strict';

const assert = require('assert/strict');
const { Client } = require('pg');
const Cursor = require('pg-cursor');

const PORT = Number(process.env.PGFERRY_PORT);
const SMALL = Number(process.env.PGFERRY_SMALL_PORT);

async function connect(port = PORT) {
  const c = new Client({ host: '127.0.0.1', port, user: 'app', password: 'secret', database: 'app' });
  await c.connect();
  return c;
}

function readCursor(cursor, n) {
  return new Promise((resolve, reject) => {
    cursor.read(n, (err, rows) => (err ? reject(err) : resolve(rows)));
  });
}

function closeCursor(cursor) {
  return new Promise((resolve, reject) => cursor.close((err) => (err ? reject(err) : resolve())));
}

// Named prepared statements from 10 clients over 2 server connections. Each
// client parses "compat_get" once (node-postgres remembers it per connection)
// and then only binds it; two clients give the same name different text, as
// names are per client connection.
async function namedStatements() {
  const clients = [];
  try {
    for (let i = 0; i < 10; i++) clients.push(await connect(SMALL));
    await Promise.all(
      clients.map(async (c, i) => {
        const text = i % 2 === 0 ? 'SELECT $1::int * 2 AS v' : 'SELECT $1::int + 1000 AS v';
        for (let n = 0; n < 20; n++) {
          const r = await c.query({ name: 'compat_get', text, values: [n] });
          const expected = i % 2 === 0 ? n * 2 : n + 1000;
          assert.equal(r.rows[0].v, expected, `client ${i} round ${n}`);
          // A second named statement interleaved with the first.
          const s = await c.query({ name: 'compat_str', text: 'SELECT $1::text || $2::text AS s', values: [`c${i}`, `-${n}`] });
          assert.equal(s.rows[0].s, `c${i}-${n}`);
        }
        // Inside a transaction too.
        await c.query('BEGIN');
        const r = await c.query({ name: 'compat_get', text, values: [7] });
        assert.equal(r.rows[0].v, i % 2 === 0 ? 14 : 1007);
        await c.query('COMMIT');
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

// pg-cursor: Parse/Bind/Execute(max rows)/Flush, then more Execute+Flush for
// the next chunks, Sync only at the end: the portal must stay on one server
// connection between chunks, in and out of an explicit transaction.
async function cursorChunks() {
  const c = await connect(SMALL);
  const other = await connect(SMALL);
  try {
    for (const inTx of [false, true]) {
      if (inTx) await c.query('BEGIN');
      const cursor = c.query(new Cursor('SELECT x, md5(x::text) AS h FROM generate_series(1, $1::int) x ORDER BY x', [100000]));
      let seen = 0;
      let chunks = 0;
      for (;;) {
        const rows = await readCursor(cursor, 7000);
        if (rows.length === 0) break;
        chunks++;
        for (const row of rows) {
          seen++;
          assert.equal(row.x, seen);
        }
        // Another client uses the pool meanwhile.
        if (chunks % 3 === 0) {
          const r = await other.query('SELECT $1::int AS n', [chunks]);
          assert.equal(r.rows[0].n, chunks);
        }
      }
      await closeCursor(cursor);
      assert.equal(seen, 100000);
      assert.equal(chunks, Math.ceil(100000 / 7000));
      if (inTx) await c.query('COMMIT');
      // Early close of a cursor, then the connection goes on.
      const early = c.query(new Cursor('SELECT x FROM generate_series(1, 1000) x'));
      const first = await readCursor(early, 10);
      assert.deepEqual(first.map((r) => r.x), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      await closeCursor(early);
      const r = await c.query('SELECT 42 AS v');
      assert.equal(r.rows[0].v, 42);
    }
  } finally {
    await c.end();
    await other.end();
  }
}

async function transactions() {
  const c = await connect();
  try {
    await c.query('DROP TABLE IF EXISTS compat_ntx');
    await c.query('CREATE TABLE compat_ntx (id int primary key, v text)');
    await c.query('BEGIN');
    await c.query('INSERT INTO compat_ntx VALUES ($1, $2)', [1, 'committed']);
    await c.query('INSERT INTO compat_ntx VALUES ($1, $2)', [2, 'committed']);
    await c.query('COMMIT');
    await c.query('BEGIN');
    await c.query('INSERT INTO compat_ntx VALUES ($1, $2)', [3, 'rolled back']);
    const inside = await c.query('SELECT count(*)::int AS n FROM compat_ntx');
    assert.equal(inside.rows[0].n, 3);
    await c.query('ROLLBACK');
    const after = await c.query('SELECT count(*)::int AS n, string_agg(v, \',\' ORDER BY id) AS vs FROM compat_ntx');
    assert.deepEqual(after.rows[0], { n: 2, vs: 'committed,committed' });
    // Savepoints.
    await c.query('BEGIN');
    await c.query('INSERT INTO compat_ntx VALUES (10, $1)', ['kept']);
    await c.query('SAVEPOINT s1');
    await c.query('INSERT INTO compat_ntx VALUES (11, $1)', ['undone']);
    await c.query('ROLLBACK TO SAVEPOINT s1');
    await c.query('COMMIT');
    const ids = await c.query('SELECT array_agg(id ORDER BY id) AS ids FROM compat_ntx');
    assert.deepEqual(ids.rows[0].ids, [1, 2, 10]);
  } finally {
    await c.end();
  }
}

// An error inside a transaction: later statements fail with 25P02 until
// ROLLBACK, the earlier insert is gone, and the client goes on. The same with
// a named statement, over the small pool.
async function errorMidTransaction() {
  const c = await connect(SMALL);
  try {
    await c.query('DROP TABLE IF EXISTS compat_nerr');
    await c.query('CREATE TABLE compat_nerr (id int primary key)');
    await c.query('BEGIN');
    await c.query({ name: 'compat_ins', text: 'INSERT INTO compat_nerr VALUES ($1)', values: [1] });
    await assert.rejects(c.query({ name: 'compat_ins', text: 'INSERT INTO compat_nerr VALUES ($1)', values: [1] }), { code: '23505' });
    await assert.rejects(c.query('SELECT 1'), { code: '25P02' });
    await c.query('ROLLBACK');
    const n = await c.query('SELECT count(*)::int AS n FROM compat_nerr');
    assert.equal(n.rows[0].n, 0);
    // The named statement still exists after the failed transaction.
    await c.query({ name: 'compat_ins', text: 'INSERT INTO compat_nerr VALUES ($1)', values: [2] });
    // An error in a statement outside a transaction.
    await assert.rejects(c.query('SELECT 1/0'), { code: '22012' });
    await assert.rejects(c.query({ name: 'compat_bad', text: 'SELECT * FROM no_such_table_compat' }), { code: '42P01' });
    const r = await c.query('SELECT array_agg(id)::text AS ids FROM compat_nerr');
    assert.equal(r.rows[0].ids, '{2}');
  } finally {
    await c.end();
  }
}

const CHECKS = [
  ['named_statements', namedStatements],
  ['cursor_chunks', cursorChunks],
  ['transactions', transactions],
  ['error_mid_transaction', errorMidTransaction],
];

async function main() {
  let passed = 0;
  let failed = 0;
  for (const [name, check] of CHECKS) {
    let timer;
    try {
      await Promise.race([
        check(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out after 120 s')), 120000);
        }),
      ]);
      console.log(`ok   node-postgres ${name}`);
      passed++;
    } catch (e) {
      console.log(`FAIL node-postgres ${name}: ${String(e && e.stack ? e.stack : e).split('\n').slice(0, 4).join(' | ')}`);
      failed++;
    } finally {
      clearTimeout(timer);
    }
  }
  console.log(`node-postgres: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
