// PostgreSQL JDBC (pgjdbc) through pgferry in transaction mode (run by
// tests/compat/run, which compiles this file into target/ at test time).
//
// PGFERRY_PORT: a pgferry with a pool of 10; PGFERRY_SMALL_PORT: one with a
// pool of 2. prepareThreshold=1, so every PreparedStatement is a named
// server-side statement (S_1, S_2, ...) from its first execution. Each check
// asserts on results, not just on the absence of errors.

import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

public class JdbcSuite {
    static final int PORT = Integer.parseInt(System.getenv("PGFERRY_PORT"));
    static final int SMALL = Integer.parseInt(System.getenv("PGFERRY_SMALL_PORT"));

    static Connection connect(int port, boolean rewrite) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "app");
        p.setProperty("password", "secret");
        p.setProperty("prepareThreshold", "1");
        p.setProperty("reWriteBatchedInserts", rewrite ? "true" : "false");
        p.setProperty("socketTimeout", "60");
        return DriverManager.getConnection("jdbc:postgresql://127.0.0.1:" + port + "/app", p);
    }

    static void check(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    static long scalar(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            check(rs.next(), "no row for " + sql);
            return rs.getLong(1);
        }
    }

    interface Check {
        void run() throws Exception;
    }

    static void preparedStatements() throws Exception {
        try (Connection c = connect(PORT, false);
                PreparedStatement ps = c.prepareStatement("SELECT ?::int * 2, ?::text")) {
            check(ps.unwrap(org.postgresql.PGStatement.class).getPrepareThreshold() == 1, "prepareThreshold");
            for (int i = 0; i < 50; i++) {
                ps.setInt(1, i);
                ps.setString(2, "v" + i);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "row");
                    check(rs.getInt(1) == i * 2 && rs.getString(2).equals("v" + i), "values at " + i);
                }
            }
            check(ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(), "server-side prepare used");
            // A second statement, then the first again (both named on the server).
            try (PreparedStatement sum = c.prepareStatement("SELECT sum(x) FROM generate_series(1, ?) x")) {
                sum.setInt(1, 100);
                try (ResultSet rs = sum.executeQuery()) {
                    check(rs.next() && rs.getLong(1) == 5050, "sum");
                }
            }
            ps.setInt(1, 21);
            ps.setString(2, "again");
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next() && rs.getInt(1) == 42 && rs.getString(2).equals("again"), "first statement again");
            }
        }
    }

    static void batch(boolean rewrite) throws Exception {
        String table = rewrite ? "compat_jbatch_rw" : "compat_jbatch";
        try (Connection c = connect(PORT, rewrite)) {
            try (Statement s = c.createStatement()) {
                s.execute("DROP TABLE IF EXISTS " + table);
                s.execute("CREATE TABLE " + table + " (id int primary key, v text)");
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " VALUES (?, ?)")) {
                for (int round = 0; round < 3; round++) {
                    for (int i = 0; i < 1000; i++) {
                        int id = round * 1000 + i;
                        ps.setInt(1, id);
                        ps.setString(2, "r" + id);
                        ps.addBatch();
                    }
                    int[] counts = ps.executeBatch();
                    long rows = 0;
                    for (int n : counts) {
                        rows += n == Statement.SUCCESS_NO_INFO ? 0 : n;
                    }
                    if (rewrite) {
                        check(counts.length == 1000, "batch result length " + counts.length);
                    } else {
                        check(counts.length == 1000 && rows == 1000, "batch counts " + counts.length + "/" + rows);
                    }
                }
            }
            check(scalar(c, "SELECT count(*) FROM " + table) == 3000, "3000 rows");
            check(scalar(c, "SELECT sum(id) FROM " + table) == 2999L * 3000 / 2, "sum of ids");
            // A batch with a duplicate key inside a transaction: rolled back as a whole.
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " VALUES (?, ?)")) {
                for (int id : new int[] {5000, 5001, 7, 5002}) {
                    ps.setInt(1, id);
                    ps.setString(2, "x");
                    ps.addBatch();
                }
                try {
                    ps.executeBatch();
                    throw new AssertionError("the duplicate key must fail");
                } catch (BatchUpdateException e) {
                    check("23505".equals(e.getSQLState()) || (e.getNextException() != null
                            && "23505".equals(e.getNextException().getSQLState())), "SQLSTATE " + e.getSQLState());
                }
            }
            c.rollback();
            c.setAutoCommit(true);
            check(scalar(c, "SELECT count(*) FROM " + table + " WHERE id >= 5000") == 0, "failed batch left nothing");
            check(scalar(c, "SELECT count(*) FROM " + table) == 3000, "still 3000 rows");
        }
    }

    static void transactions() throws Exception {
        try (Connection c = connect(PORT, false)) {
            try (Statement s = c.createStatement()) {
                s.execute("DROP TABLE IF EXISTS compat_jtx");
                s.execute("CREATE TABLE compat_jtx (id int primary key, v text)");
            }
            c.setAutoCommit(false);
            try (PreparedStatement ins = c.prepareStatement("INSERT INTO compat_jtx VALUES (?, ?)")) {
                ins.setInt(1, 1);
                ins.setString(2, "committed");
                check(ins.executeUpdate() == 1, "insert 1");
                c.commit();
                ins.setInt(1, 2);
                ins.setString(2, "rolled back");
                check(ins.executeUpdate() == 1, "insert 2");
                check(scalar(c, "SELECT count(*) FROM compat_jtx") == 2, "own insert visible in the transaction");
                c.rollback();
                check(scalar(c, "SELECT count(*) FROM compat_jtx") == 1, "rollback");
                c.commit();
                // An error: the transaction is aborted until rollback.
                ins.setInt(1, 3);
                ins.setString(2, "lost");
                ins.executeUpdate();
                ins.setInt(1, 1);
                try {
                    ins.executeUpdate();
                    throw new AssertionError("the duplicate key must fail");
                } catch (SQLException e) {
                    check("23505".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
                }
                try {
                    scalar(c, "SELECT 1");
                    throw new AssertionError("an aborted transaction must refuse statements");
                } catch (SQLException e) {
                    check("25P02".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
                }
                c.rollback();
                ins.setInt(1, 4);
                ins.setString(2, "after");
                check(ins.executeUpdate() == 1, "insert after rollback");
                c.commit();
            }
            c.setAutoCommit(true);
            try (Statement s = c.createStatement();
                    ResultSet rs = s.executeQuery("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM compat_jtx")) {
                check(rs.next(), "row");
                check("1:committed,4:after".equals(rs.getString(1)), "rows: " + rs.getString(1));
            }
        }
    }

    // 8 connections over a pool of 2, each in its own thread: named prepared
    // statements, transactions and rollbacks interleaved; counts checked.
    static void smallPool() throws Exception {
        try (Connection c = connect(SMALL, false); Statement s = c.createStatement()) {
            s.execute("DROP TABLE IF EXISTS compat_jpool");
            s.execute("CREATE TABLE compat_jpool (worker int, n int, v int)");
        }
        final int workers = 8;
        final int rounds = 25;
        ExecutorService ex = Executors.newFixedThreadPool(workers);
        try {
            List<Future<Long>> futures = new ArrayList<>();
            for (int w = 0; w < workers; w++) {
                final int worker = w;
                futures.add(ex.submit((Callable<Long>) () -> {
                    long sum = 0;
                    try (Connection c = connect(SMALL, false);
                            PreparedStatement calc = c.prepareStatement("SELECT ?::int * 100 + ?::int");
                            PreparedStatement ins = c.prepareStatement("INSERT INTO compat_jpool VALUES (?, ?, ?)");
                            PreparedStatement mine = c.prepareStatement("SELECT count(*) FROM compat_jpool WHERE worker = ?")) {
                        for (int n = 0; n < rounds; n++) {
                            calc.setInt(1, worker);
                            calc.setInt(2, n);
                            int v;
                            try (ResultSet rs = calc.executeQuery()) {
                                check(rs.next(), "row");
                                v = rs.getInt(1);
                            }
                            check(v == worker * 100 + n, "calc " + worker + "/" + n + " = " + v);
                            c.setAutoCommit(false);
                            ins.setInt(1, worker);
                            ins.setInt(2, n);
                            ins.setInt(3, v);
                            ins.executeUpdate();
                            mine.setInt(1, worker);
                            try (ResultSet rs = mine.executeQuery()) {
                                check(rs.next() && rs.getLong(1) == n + 1, "own count " + worker + "/" + n);
                            }
                            c.commit();
                            ins.setInt(2, -1);
                            ins.executeUpdate();
                            c.rollback();
                            c.setAutoCommit(true);
                            sum += v;
                        }
                    }
                    return sum;
                }));
            }
            long expected = 0;
            long total = 0;
            for (int w = 0; w < workers; w++) {
                total += futures.get(w).get(120, TimeUnit.SECONDS);
                for (int n = 0; n < rounds; n++) {
                    expected += w * 100 + n;
                }
            }
            check(total == expected, "worker sums");
        } finally {
            ex.shutdownNow();
        }
        try (Connection c = connect(SMALL, false)) {
            check(scalar(c, "SELECT count(*) FROM compat_jpool") == (long) workers * rounds, "row count");
            check(scalar(c, "SELECT count(*) FROM compat_jpool WHERE n = -1") == 0, "rolled back rows");
            check(scalar(c, "SELECT count(DISTINCT (worker, n)) FROM compat_jpool") == (long) workers * rounds, "distinct");
        }
    }

    public static void main(String[] args) {
        String[] names = {"prepared_statements", "batch", "batch_rewritten", "transactions", "small_pool"};
        Check[] checks = {
            JdbcSuite::preparedStatements, () -> batch(false), () -> batch(true), JdbcSuite::transactions,
            JdbcSuite::smallPool,
        };
        int passed = 0;
        int failed = 0;
        for (int i = 0; i < checks.length; i++) {
            try {
                checks[i].run();
                System.out.println("ok   jdbc " + names[i]);
                passed++;
            } catch (Throwable e) {
                Throwable cause = e.getCause() != null ? e.getCause() : e;
                System.out.println("FAIL jdbc " + names[i] + ": " + cause);
                failed++;
            }
        }
        System.out.println("jdbc: " + passed + " passed, " + failed + " failed");
        System.exit(failed > 0 ? 1 : 0);
    }
}
