use super::*;

use Verdict::{ReadOnly as R, Write as W};

/// (statement, expected verdict under the default policy)
const CASES: &[(&str, Verdict)] = &[
    // --- plain reads, case and spacing ---
    ("SELECT 1", R),
    ("select 1", R),
    ("SeLeCt 1", R),
    ("SELECT 1;", R),
    ("  SELECT 1 ;  -- done\n", R),
    ("\n\t SELECT 1\r\n", R),
    ("select/*c*/1", R),
    ("SELECT(1)", R),
    ("SELECT'a'", R),
    ("SELECT abalance FROM pgbench_accounts WHERE aid = $1;", R),
    ("SELECT $1, $2 FROM t WHERE a = $3", R),
    ("SELECT $1::int", R),
    ("select * from t where a = 1 and b in (1,2,3) order by a limit 10", R),
    ("SELECT * FROM t WHERE a IN (SELECT b FROM u)", R),
    ("SELECT a FROM t WHERE b = ANY($1)", R),
    ("SELECT coalesce(a, 0), count(*) FROM t GROUP BY 1", R),
    ("SELECT x::numeric(10,2) FROM t", R),
    ("SELECT a$b$c FROM t", R),
    ("SELECT ä, 'ünïcödé' FROM \"täble\"", R),
    ("SELECT * FROM t TABLESAMPLE SYSTEM (10)", R),
    ("SELECT pg_sleep(1)", R),
    ("SELECT gen_random_uuid()", R),
    ("SELECT nextval FROM t", R),
    ("SELECT lo_get(42)", R),
    // --- other read-only statement kinds ---
    ("TABLE t", R),
    ("table only t", R),
    ("VALUES (1),(2)", R),
    ("SHOW search_path", R),
    ("show all", R),
    ("WITH x AS (SELECT 1) SELECT * FROM x", R),
    ("WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 5) SELECT * FROM t", R),
    ("(SELECT 1) UNION (SELECT 2)", R),
    ("((SELECT 1))", R),
    ("EXPLAIN SELECT * FROM t", R),
    ("EXPLAIN ANALYZE VERBOSE SELECT * FROM t", R),
    ("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT 1", R),
    ("SELECT * FROM t FOR READ ONLY", R),
    // --- multiple statements: read-only only if every one is ---
    ("SELECT 1; SELECT 2", R),
    ("SELECT 1;;", R),
    ("SELECT 1; DELETE FROM t", W),
    ("SELECT 1; SET x = 1", W),
    ("SELECT 1 --\n; DELETE FROM t", W),
    // --- strings, identifiers and comments hide keywords ---
    ("SELECT 'delete from t'", R),
    ("SELECT 'for update'", R),
    ("SELECT 'it''s; delete'", R),
    ("SELECT \"update\" FROM t", R),
    ("SELECT \"a\"\"b; delete\" FROM t", R),
    ("-- delete\nSELECT 1", R),
    ("/* update */ SELECT 1", R),
    ("select 1 -- ; delete from t", R),
    ("SELECT 1 /* nested /* delete */ still comment */", R),
    ("SELECT 1 /*/ DELETE */", R),
    ("SELECT $$DELETE$$", R),
    ("SELECT $a$ it's $$ DELETE $a$", R),
    ("SELECT $$a$$ || $b$ DELETE $b$", R),
    ("SELECT $a$ $ab$ $a $b$ delete $a$", R),
    ("SELECT E'it\\'s; delete'", R),
    ("SELECT E'\\'; DELETE FROM t; --'", R),
    ("SELECT E'a'\n'\\'; DELETE FROM t; --'", R),
    ("SELECT 'a'\n  -- comment\n'b'", R),
    ("SELECT B'101', X'1F'", R),
    ("SELECT * FROM t WHERE x LIKE E'%\\\\%'", R),
    ("SELECT 1\0", R),
    ("select 1; -- trailing\n", R),
    ("SELECT x FROM t WHERE y = $tag$abc$tag$ AND z = $1", R),
    ("SELECT 1e5, .5, 1.5e-3, 0x1F, 1_000 FROM t", R),
    ("SELECT B'01''1'", R),
    ("SELECT xE'\\'; DELETE FROM t; --'", W),
    ("SELECT U&'d\\0061t' FROM t", R),
    // --- ambiguity under standard_conforming_strings = off ---
    ("SELECT 'a\\'; DELETE FROM t; --'", W),
    ("SELECT 'a\\b' FROM t", R),
    // --- lexical errors and empty input ---
    ("SELECT 'abc", W),
    ("SELECT 1 /* unterminated", W),
    ("SELECT 1 /* nested /* */ DELETE", W),
    ("SELECT E'abc\\'", W),
    ("SELECT $$unterminated", W),
    ("SELECT $a$ x $b$", W),
    ("SELECT \"unterminated", W),
    ("SELECT \"\"", W),
    ("SELECT 1\0; DELETE FROM t", W),
    ("", W),
    ("   \n", W),
    ("-- only comment", W),
    ("/* c */", W),
    (";", W),
    ("; ;", W),
    // --- writes hidden in reads ---
    ("SELECT nextval('s')", W),
    ("SELECT NEXTVAL('s')", W),
    ("SELECT nextval /* c */ ('s')", W),
    ("SELECT pg_catalog.nextval('s')", W),
    ("SELECT pg_catalog . nextval ('s')", W),
    ("SELECT \"nextval\"('s')", W),
    ("SELECT \"pg_catalog\".\"NextVal\"('s')", W),
    ("SELECT U&\"\\006Eextval\"('s')", W),
    ("SELECT currval('s')", W),
    ("SELECT lastval()", W),
    ("SELECT setval('s', 1)", W),
    ("SELECT pg_advisory_lock(1)", W),
    ("SELECT pg_try_advisory_xact_lock(1)", W),
    ("SELECT set_config('a','b',false)", W),
    ("SELECT pg_notify('c', 'x')", W),
    ("SELECT txid_current()", W),
    ("SELECT * FROM dblink('db', 'select 1') AS t(a int)", W),
    ("SELECT dblink_exec('x')", W),
    ("SELECT lo_import('/tmp/x')", W),
    ("SELECT myschema.lo_unlink(1)", W),
    ("SELECT query_to_xml('delete from t', true, true, '')", W),
    ("SELECT pg_terminate_backend(123)", W),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", W),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", W),
    ("WITH x AS (SELECT 1) UPDATE t SET a = 1", W),
    ("SELECT * INTO t2 FROM t", W),
    ("SELECT 1 INTO", W),
    ("SELECT 1into t2", W),
    ("SELECT 1.into t2", W),
    ("SELECT * FROM t FOR UPDATE SKIP LOCKED", W),
    ("select 1 for update", W),
    ("SELECT * FROM t WHERE a = 'x' FOR UPDATE OF t", W),
    ("SELECT x FROM t FOR SHARE OF t NOWAIT", W),
    ("SELECT x FROM t FOR KEY SHARE", W),
    ("SELECT x FROM t FOR NO KEY UPDATE", W),
    ("SELECT x FROM t FOR /* c */ SHARE", W),
    ("(DELETE FROM t)", W),
    // --- EXPLAIN ---
    ("EXPLAIN ANALYZE DELETE FROM t", W),
    ("EXPLAIN (ANALYZE) INSERT INTO t VALUES (1)", W),
    ("EXPLAIN EXECUTE p", W),
    ("EXPLAIN ANALYZE SELECT nextval('s')", W),
    ("EXPLAIN CREATE TABLE t2 AS SELECT 1", W),
    ("EXPLAIN", W),
    ("EXPLAIN SHOW x", W),
    // --- everything else ---
    ("COPY (SELECT 1) TO STDOUT", W),
    ("COPY t TO STDOUT", W),
    ("SET x = 1", W),
    ("BEGIN READ ONLY", W),
    ("BEGIN", W),
    ("COMMIT", W),
    ("UPDATE t SET a=1", W),
    ("INSERT INTO t SELECT * FROM u", W),
    ("DELETE FROM t", W),
    ("CALL p()", W),
    ("DO $$ BEGIN PERFORM 1; END $$", W),
    ("LOCK t", W),
    ("VACUUM", W),
    ("ANALYZE t", W),
    ("CREATE TABLE t (a int)", W),
    ("MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE", W),
    ("TRUNCATE t", W),
    ("PREPARE p AS SELECT 1", W),
    ("EXECUTE p", W),
    ("DECLARE c CURSOR FOR SELECT 1", W),
    ("FETCH c", W),
    ("LISTEN x", W),
    ("NOTIFY x", W),
    ("REFRESH MATERIALIZED VIEW v", W),
    ("GRANT SELECT ON t TO u", W),
    ("SELECT$$x$$", W),
    ("SÉLECT 1", W),
    ("SELECTX 1", W),
    ("(SHOW x)", W),
];

#[test]
fn table_default_policy() {
    let policy = FunctionPolicy::default();
    let mut failures = Vec::new();
    for &(sql, want) in CASES {
        let got = classify(sql, &policy);
        if got != want {
            failures.push(format!("{sql:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(CASES.len() >= 80, "only {} cases", CASES.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn allow_list_mode() {
    let empty = FunctionPolicy::allow_list(&[]);
    let lower = FunctionPolicy::allow_list(&["lower"]);
    let cases: &[(&FunctionPolicy, &str, Verdict)] = &[
        (&empty, "SELECT lower('A')", W),
        (&lower, "SELECT lower('A')", R),
        (&lower, "SELECT LOWER('A')", R),
        (&lower, "SELECT pg_catalog.lower('A')", R),
        (&lower, "SELECT myschema.lower('A')", W),
        (&lower, "SELECT \"lower\"('A')", R),
        (&lower, "SELECT \"LOWER\"('A')", W),
        (&lower, "SELECT upper('A')", W),
        (&empty, "SELECT CAST(1 AS int)", R),
        (&empty, "SELECT CAST(x AS varchar(20)) FROM t", R),
        (&empty, "SELECT x::numeric(10,2), y::pg_catalog.numeric(5) FROM t", R),
        (&empty, "SELECT 'x'::character varying(5)", R),
        (&empty, "SELECT a FROM t WHERE b IN (1,2)", R),
        (&empty, "SELECT a FROM t WHERE NOT EXISTS (SELECT 1 FROM u)", R),
        (&empty, "SELECT a FROM t WHERE b = ANY (ARRAY[1,2]) AND c IN ((1))", R),
        (&empty, "SELECT coalesce(a, 1), nullif(a, 2), greatest(1, 2) FROM t", R),
        (&empty, "SELECT ROW(1, 2), ARRAY(SELECT 1)", R),
        (&empty, "SELECT CASE WHEN (a > 1) THEN (1) ELSE (2) END FROM t", R),
        (&empty, "SELECT substring('abc' FROM 1 FOR 2), trim(both 'x' from 'xax')", R),
        (&empty, "SELECT * FROM t TABLESAMPLE BERNOULLI (10) REPEATABLE (1)", R),
        (&empty, "SELECT current_timestamp(3)", R),
        (&empty, "VALUES (1), (2)", R),
        (&empty, "TABLE t", R),
        (&empty, "SHOW search_path", R),
        (&empty, "WITH x(a) AS (SELECT 1) SELECT * FROM x", R),
        (&empty, "WITH x(a, \"b\") AS MATERIALIZED (SELECT 1, 2) SELECT * FROM x", R),
        (&empty, "WITH x(a) AS NOT MATERIALIZED (SELECT 1) SELECT * FROM x", R),
        (
            &empty,
            "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 5) SELECT * FROM t",
            R,
        ),
        (&empty, "SELECT * FROM t AS x(a, b)", R),
        (&empty, "SELECT count(*) FROM t", W),
        (&empty, "SELECT f(a) AS x FROM t", W),
        (&empty, "SELECT * FROM generate_series(1, 3) AS g(i)", W),
        (&empty, "SELECT * FROM t WHERE a IN (SELECT f(b) FROM u)", W),
        (&empty, "SELECT sum(x) OVER (PARTITION BY y) FROM t", W),
        (&empty, "SELECT nextval('s')", W),
        (&lower, "SELECT \"in\"(1)", W),
    ];
    let count = FunctionPolicy::allow_list(&["count", "sum", "generate_series"]);
    let nextval = FunctionPolicy::allow_list(&["nextval"]);
    let pg_star = FunctionPolicy::allow_list(&["pg_*"]);
    let qualified = FunctionPolicy::allow_list(&["myschema.lower"]);
    let more: &[(&FunctionPolicy, &str, Verdict)] = &[
        (&count, "SELECT count(*) FROM t", R),
        (&count, "SELECT sum(x) OVER (PARTITION BY y) FROM t", R),
        (&count, "SELECT sum(x) FILTER (WHERE y) FROM t", R),
        (&count, "SELECT * FROM generate_series(1, 3) AS g(i)", R),
        (&nextval, "SELECT nextval('s')", W),
        (&pg_star, "SELECT pg_sleep(1)", R),
        (&pg_star, "SELECT pg_advisory_lock(1)", W),
        (&qualified, "SELECT myschema.lower('A')", R),
        (&qualified, "SELECT lower('A')", W),
        (&qualified, "SELECT db.myschema.lower('A')", W),
    ];
    let mut failures = Vec::new();
    for &(policy, sql, want) in cases.iter().chain(more) {
        let got = classify(sql, policy);
        if got != want {
            failures.push(format!(
                "{sql:?} with {policy:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn deny_list_mode() {
    let none = FunctionPolicy::deny_list(&[]);
    assert_eq!(classify("SELECT nextval('s')", &none), R);
    let mine = FunctionPolicy::deny_list(&["My_Fn", " audit_* "]);
    assert_eq!(mine.denied(), ["audit_*".to_owned(), "my_fn".to_owned()]);
    assert_eq!(mine.allowed(), None);
    assert_eq!(classify("SELECT my_fn()", &mine), W);
    assert_eq!(classify("SELECT MY_FN (1)", &mine), W);
    assert_eq!(classify("SELECT s.audit_log('x')", &mine), W);
    assert_eq!(classify("SELECT my_fn FROM t", &mine), R);
    assert_eq!(classify("SELECT nextval('s')", &mine), R);
    let default = FunctionPolicy::default();
    for name in DEFAULT_DENIED_FUNCTIONS {
        let name = name.trim_end_matches('*');
        let sql = format!("SELECT {name}x(1)");
        let sql_exact = format!("SELECT {name}(1)");
        if name.ends_with('_') || DEFAULT_DENIED_FUNCTIONS.contains(&format!("{name}*").as_str()) {
            assert_eq!(classify(&sql, &default), W, "{sql}");
        }
        assert_eq!(classify(&sql_exact, &default), W, "{sql_exact}");
    }
}

#[test]
fn route_hints() {
    let cases: &[(&str, Option<RouteHint>)] = &[
        ("/* pgferry:replica */ SELECT 1", Some(RouteHint::Replica)),
        ("/* pgferry:primary */ SELECT 1", Some(RouteHint::Primary)),
        (
            "  \n\t/* pgferry:replica */SELECT 1",
            Some(RouteHint::Replica),
        ),
        ("/*pgferry:PRIMARY*/SELECT 1", Some(RouteHint::Primary)),
        (
            "/*  PgFerry :  Replica  */ SELECT 1",
            Some(RouteHint::Replica),
        ),
        ("/* pgferry:replica */", Some(RouteHint::Replica)),
        ("SELECT 1 /* pgferry:replica */", None),
        ("/* other */ /* pgferry:replica */ SELECT 1", None),
        ("-- pgferry:replica\nSELECT 1", None),
        ("/* just a comment */ SELECT 1", None),
        ("/* pgferry:standby */ SELECT 1", None),
        ("/* pgferry replica */ SELECT 1", None),
        ("/* pgferry:replica extra */ SELECT 1", None),
        ("/* pgferry:replica", None),
        ("/* pgferryx:replica */", None),
        ("/**/", None),
        ("", None),
        ("SELECT 1", None),
    ];
    for &(sql, want) in cases {
        assert_eq!(route_hint(sql), want, "{sql:?}");
    }
    // The hint is only a comment to the classifier.
    let policy = FunctionPolicy::default();
    assert_eq!(classify("/* pgferry:primary */ SELECT 1", &policy), R);
    assert_eq!(classify("/* pgferry:replica */ DELETE FROM t", &policy), W);
}

#[test]
fn transaction_effects() {
    use TxEffect::{Begin, End, None as Nothing};
    let rw = Begin { read_only: false };
    let ro = Begin { read_only: true };
    let cases: &[(&str, TxEffect)] = &[
        ("BEGIN", rw),
        ("begin;", rw),
        ("BEGIN WORK", rw),
        ("BEGIN READ ONLY", ro),
        ("/* pgferry:replica */ BEGIN READ ONLY", ro),
        (
            "begin transaction isolation level serializable read only",
            ro,
        ),
        (
            "BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY, DEFERRABLE",
            ro,
        ),
        ("BEGIN ISOLATION LEVEL READ UNCOMMITTED", rw),
        ("BEGIN READ ONLY, READ WRITE", rw),
        ("START TRANSACTION", rw),
        ("START TRANSACTION READ WRITE", rw),
        ("start transaction read only", ro),
        ("START", Nothing),
        ("COMMIT", End),
        ("COMMIT WORK", End),
        ("ROLLBACK", End),
        ("ROLLBACK TRANSACTION", End),
        ("END", End),
        ("ABORT", End),
        ("COMMIT AND CHAIN", rw),
        ("ROLLBACK AND CHAIN", rw),
        ("COMMIT AND NO CHAIN", End),
        ("ROLLBACK TO SAVEPOINT a", Nothing),
        ("ROLLBACK WORK TO a", Nothing),
        ("SAVEPOINT a", Nothing),
        ("RELEASE SAVEPOINT a", Nothing),
        ("PREPARE TRANSACTION 'x'", End),
        ("COMMIT PREPARED 'x'", End),
        ("ROLLBACK PREPARED 'to'", End),
        ("PREPARE p AS SELECT 1", Nothing),
        ("SELECT 1", Nothing),
        ("SELECT 'BEGIN'", Nothing),
        ("\"begin\"", Nothing),
        ("-- BEGIN\nSELECT 1", Nothing),
        ("DO $$ BEGIN END $$", Nothing),
        ("BEGIN; SELECT 1", rw),
        ("SELECT 1; COMMIT", End),
        ("BEGIN; INSERT INTO t VALUES (1); COMMIT;", End),
        ("COMMIT; BEGIN READ ONLY", rw),
        ("BEGIN READ ONLY; SELECT 1", ro),
        ("BEGIN READ ONLY; SELECT 1; SELECT 2;", ro),
        ("SELECT 1; BEGIN READ ONLY", rw),
        ("DELETE FROM t; BEGIN READ ONLY", rw),
        (
            "BEGIN READ ONLY; SET TRANSACTION READ WRITE; INSERT INTO t VALUES (1)",
            rw,
        ),
        ("BEGIN READ ONLY; reset transaction_read_only", rw),
        ("BEGIN READ ONLY; COMMIT", End),
        ("BEGIN; SET LOCAL work_mem = '1MB'", rw),
        ("BEGIN 'unterminated", Nothing),
        ("", Nothing),
    ];
    for &(sql, want) in cases {
        assert_eq!(tx_effect(sql), want, "{sql:?}");
        assert_eq!(tx_effect_bytes(sql.as_bytes()), Some(want), "{sql:?}");
    }
    // Not UTF-8: the byte shortcut still answers for a plain statement, and
    // nothing is guessed for the rest.
    assert_eq!(
        tx_effect_bytes(b"UPDATE t SET a = '\xff'"),
        Some(TxEffect::None)
    );
    assert_eq!(tx_effect_bytes(b"COMMIT /* \xff */"), None);
}

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&[u8]] = &[
    b"'",
    b"''",
    b"\"",
    b"$$",
    b"$a$",
    b"$1",
    b"$",
    b"E'",
    b"e'\\",
    b"B'",
    b"U&\"",
    b"U&'",
    b"--",
    b"/*",
    b"*/",
    b"\n",
    b"\r",
    b"\\",
    b"(",
    b")",
    b";",
    b"::",
    b".",
    b",",
    b" ",
    b"select ",
    b"delete ",
    b"for ",
    b"update",
    b"share",
    b"into ",
    b"nextval(",
    b"with ",
    b"as ",
    b"explain ",
    b"begin ",
    b"commit ",
    b"and chain",
    b"\0",
    b"\xc3\xa9",
    b"\xff",
    b"1e",
    b"1.",
    b".5",
    b"0x",
    b"_",
    b"\t",
    b"\x0b",
    b"pgferry:replica",
];

/// Every verdict must survive these suffixes being appended: a statement the
/// classifier calls read-only has all its quotes and comments closed, so a
/// following write must be seen.
fn check_invariants(sql: &str, policies: &[FunctionPolicy]) -> usize {
    let mut read_only = 0;
    for policy in policies {
        let verdict = classify(sql, policy);
        if verdict == R {
            read_only += 1;
            let extended = format!("{sql}\n;DELETE FROM t");
            assert_eq!(classify(&extended, policy), W, "{extended:?}");
            let hinted = format!("/* pgferry:replica */ {sql}");
            assert_eq!(classify(&hinted, policy), R, "{hinted:?}");
        }
    }
    let _ = route_hint(sql);
    let _ = tx_effect(sql);
    read_only
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let policies = [
        FunctionPolicy::default(),
        FunctionPolicy::allow_list(&[]),
        FunctionPolicy::allow_list(&["lower", "pg_*", "s.f*"]),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds: Vec<&str> = CASES.iter().map(|(sql, _)| *sql).collect();
    let mut buf: Vec<u8> = Vec::new();
    let mut read_only = 0;
    let rounds: usize = std::env::var("PGFERRY_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    for round in 0..rounds {
        buf.clear();
        match round % 3 {
            0 => {
                // Pure random bytes, biased towards interesting ASCII.
                let len = rng.below(64);
                for _ in 0..len {
                    let b = rng.next() as u8;
                    let alphabet = b"'\"$-/*\\;() aeEsx1\n";
                    buf.push(if rng.below(4) == 0 {
                        b
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    });
                }
            }
            1 => {
                // Random fragments glued together.
                for _ in 0..rng.below(12) {
                    buf.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]);
                }
            }
            _ => {
                // Mutations of the table's statements.
                buf.extend_from_slice(seeds[rng.below(seeds.len())].as_bytes());
                for _ in 0..=rng.below(3) {
                    let at = rng.below(buf.len() + 1);
                    match rng.below(4) {
                        0 if at < buf.len() => {
                            buf.remove(at);
                        }
                        1 if at < buf.len() => buf[at] = rng.next() as u8,
                        2 => {
                            let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
                            buf.splice(at..at, frag.iter().copied());
                        }
                        _ => buf.truncate(at),
                    }
                }
            }
        }
        let sql = String::from_utf8_lossy(&buf);
        read_only += check_invariants(&sql, &policies);
    }
    // The invariants must actually have been exercised.
    assert!(
        read_only > rounds / 12,
        "only {read_only} read-only samples"
    );
}

#[test]
fn pathological_inputs_are_linear() {
    let policy = FunctionPolicy::allow_list(&[]);
    // Many near-miss dollar delimiters inside a dollar quote.
    let tag = "a".repeat(2000);
    let mut sql = format!("SELECT ${tag}$");
    for _ in 0..2000 {
        sql.push_str(&format!("${}b$", "a".repeat(1999)));
    }
    sql.push_str(&format!("${tag}$"));
    let start = std::time::Instant::now();
    assert_eq!(classify(&sql, &FunctionPolicy::default()), R);
    // Deep nesting and long inputs.
    let deep = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(classify(&deep, &FunctionPolicy::default()), R);
    assert_eq!(classify(&deep, &policy), R);
    let comments = format!("SELECT 1 {}{}", "/*".repeat(50_000), "*/".repeat(50_000));
    assert_eq!(classify(&comments, &policy), R);
    let ctes = format!(
        "WITH {} y(a) AS (SELECT 1) SELECT 1",
        "x(a) AS (SELECT 1),".repeat(10_000)
    );
    assert_eq!(classify(&ctes, &policy), R);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn shortcuts_agree_with_the_lexer() {
    let policy = FunctionPolicy::default();
    for sql in [
        "SELECT 1",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
        "SELECT 1; BEGIN",
        "BEGIN READ ONLY; SELECT 1",
        "begin; select 1",
        "select 1; commit",
        "(select 1); end",
        "SELECT 1; ROLLBACK TO SAVEPOINT a",
        "SELECT 1; START TRANSACTION READ ONLY",
        "SELECT 1; PREPARE TRANSACTION 'x'",
        "SELECT 1; ABORT",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SELECT 'begin'; select 2",
        "SELECT $$;BEGIN$$",
        "/* c */ BEGIN",
        "SELECT 1 /* ; commit */",
        "SELECT 1 -- ; commit\n; COMMIT",
        "SELECT 1;\0",
        "SELECT E'\\'; BEGIN'",
        "UPDATE t SET a = 1; COMMIT",
        "SELECT nextval('s'); COMMIT",
        "SHOW search_path; END",
        "EXPLAIN SELECT 1; begin isolation level serializable",
        "SELECT (1",
        "",
        ";;",
    ] {
        assert_eq!(
            (classify(sql, &policy), tx_effect(sql)),
            (classify_lexed(sql, &policy), tx_effect_lexed(sql)),
            "{sql:?}"
        );
    }
}
