//! Wire fixtures shared by the micro-benchmarks and the instruction-count
//! harness: realistic client batches and server replies, built by hand so
//! the bytes are exactly what a driver or Postgres would send.

#![allow(dead_code)] // each bench uses a subset

use pgferry::protocol::frame;

/// Large enough for every fixture; the proxy's own limit plays no role here.
pub const MAX: usize = 1 << 30;

/// The pgbench -S query.
pub const PGBENCH_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;";

/// Appends one tagged message: tag, length (counting itself), body.
pub fn msg(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
}

fn cstrs(parts: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(p);
        b.push(0);
    }
    b
}

/// Parse of `name` for `sql` with one int4 parameter.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstrs(&[name.as_bytes(), sql.as_bytes()]);
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&23u32.to_be_bytes());
    let mut out = Vec::new();
    msg(&mut out, b'P', &body);
    out
}

/// Bind of unnamed portal to `statement` with one text parameter, text results.
pub fn bind(statement: &str, param: &str) -> Vec<u8> {
    let mut body = cstrs(&[b"", statement.as_bytes()]);
    body.extend_from_slice(&0i16.to_be_bytes()); // parameter formats: all text
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&(param.len() as i32).to_be_bytes());
    body.extend_from_slice(param.as_bytes());
    body.extend_from_slice(&0i16.to_be_bytes()); // result formats: all text
    let mut out = Vec::new();
    msg(&mut out, b'B', &body);
    out
}

/// One pgbench -S transaction in extended mode: Parse (unnamed), Bind,
/// Describe portal, Execute, Sync.
pub fn pgbench_batch() -> Vec<u8> {
    let mut out = parse("", PGBENCH_SELECT);
    out.extend_from_slice(&bind("", "48213"));
    msg(&mut out, b'D', b"P\0");
    msg(&mut out, b'E', b"\0\0\0\0\0");
    msg(&mut out, b'S', b"");
    out
}

/// The server's reply to a three-column query returning `rows` rows:
/// ParseComplete, BindComplete, RowDescription, DataRow × rows,
/// CommandComplete, ReadyForQuery.
pub fn server_reply(rows: usize) -> Vec<u8> {
    let mut out = Vec::new();
    msg(&mut out, b'1', b"");
    msg(&mut out, b'2', b"");
    let mut desc = 3i16.to_be_bytes().to_vec();
    for (name, oid) in [("aid", 23u32), ("abalance", 23), ("filler", 1042)] {
        desc.extend_from_slice(name.as_bytes());
        desc.push(0);
        desc.extend_from_slice(&16_400u32.to_be_bytes()); // table oid
        desc.extend_from_slice(&1i16.to_be_bytes()); // column number
        desc.extend_from_slice(&oid.to_be_bytes());
        desc.extend_from_slice(&4i16.to_be_bytes());
        desc.extend_from_slice(&(-1i32).to_be_bytes());
        desc.extend_from_slice(&0i16.to_be_bytes());
    }
    msg(&mut out, b'T', &desc);
    for i in 0..rows {
        let mut row = 3i16.to_be_bytes().to_vec();
        let filler = format!("{:<84}", "");
        for v in [i.to_string(), (i * 7 % 5000).to_string(), filler] {
            row.extend_from_slice(&(v.len() as i32).to_be_bytes());
            row.extend_from_slice(v.as_bytes());
        }
        msg(&mut out, b'D', &row);
    }
    msg(&mut out, b'C', format!("SELECT {rows}\0").as_bytes());
    msg(&mut out, b'Z', b"I");
    out
}

/// A COPY FROM STDIN data stream of about `bytes`: CopyData messages of one
/// ~100-byte text row each, then CopyDone.
pub fn copy_stream(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 128);
    let mut i = 0u64;
    while out.len() < bytes {
        let row = format!("{i}\t{}\t{}\t{:<80}\n", i % 10, i * 13 % 100_000, "");
        msg(&mut out, b'd', row.as_bytes());
        i += 1;
    }
    msg(&mut out, b'c', b"");
    out
}

/// Walks `buf` by message header only, as the forwarding path does:
/// returns (messages, ReadyForQuery seen).
pub fn scan_headers(buf: &[u8]) -> (usize, bool) {
    let (mut at, mut n, mut ready) = (0, 0, false);
    while let Ok(Some(h)) = frame::header(&buf[at..], MAX) {
        if buf.len() - at < h.total_len() {
            break;
        }
        ready |= h.tag == b'Z';
        at += h.total_len();
        n += 1;
    }
    (n, ready)
}

/// Walks `buf` message by message with bodies, reading the transaction
/// status of a ReadyForQuery: returns (messages, status byte).
pub fn scan_messages(buf: &[u8]) -> (usize, u8) {
    let (mut at, mut n, mut status) = (0, 0, 0);
    while let Ok(Some((tag, body))) = frame::message(&buf[at..], MAX) {
        if tag == b'Z' {
            status = body.first().copied().unwrap_or(0);
        }
        at += frame::HEADER_LEN + body.len();
        n += 1;
    }
    (n, status)
}

/// A ~2 KB reporting query: joins, CTE, comments, strings, casts, calls.
pub fn long_select() -> String {
    let mut sql = String::from(
        "/* report: daily revenue by region -- generated by the dashboard */\n\
         WITH recent_orders AS (\n\
           SELECT o.id, o.customer_id, o.created_at, o.total::numeric(12,2) AS total\n\
           FROM orders o -- only the last week\n\
           WHERE o.created_at >= now() - interval '7 days'\n\
             AND o.status IN ('paid', 'shipped', 'delivered')\n\
         )\n\
         SELECT r.name AS region, date_trunc('day', ro.created_at) AS day,\n\
                count(DISTINCT ro.customer_id) AS customers,\n\
                sum(ro.total) AS revenue, avg(ro.total) AS avg_order,\n\
                coalesce(max(p.discount), 0) AS max_discount\n\
         FROM recent_orders ro\n\
         JOIN customers c ON c.id = ro.customer_id\n\
         JOIN addresses a ON a.customer_id = c.id AND a.kind = 'billing'\n\
         JOIN regions r ON r.id = a.region_id\n\
         LEFT JOIN promotions p ON p.customer_id = c.id /* promo may be null */\n\
         WHERE c.deleted_at IS NULL\n",
    );
    let mut i = 0;
    while sql.len() < 1900 {
        sql.push_str(&format!(
            "  AND (c.segment <> 'internal-{i}' OR c.id = ANY($1::bigint[])) -- filter {i}\n"
        ));
        i += 1;
    }
    sql.push_str("GROUP BY 1, 2\nORDER BY 1, 2 DESC\nLIMIT 500;");
    sql
}
