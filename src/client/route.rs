//! Routing from the session's side: reading the head of a batch, the
//! `pgferry.route` setting that pgferry answers itself, and read-your-writes
//! bookkeeping.

use std::time::Instant;

use bytes::{BufMut, BytesMut};

use crate::config::Route;
use crate::protocol::build;
use crate::protocol::{frame, tag, TxStatus};
use crate::router::classify::{self, FunctionPolicy, TxEffect, Verdict};
use crate::router::{memo, BatchFacts};
use crate::state::Knobs;

/// The session parameter clients use to choose their route.
pub const ROUTE_PARAM: &str = "pgferry.route";

/// A `SET`/`RESET`/`SHOW pgferry.route` statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteCommand {
    Set(Route),
    Reset,
    Show,
}

pub fn parse_route(value: &str) -> Result<Route, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "primary" => Ok(Route::Primary),
        "replica" => Ok(Route::Replica),
        "auto" => Ok(Route::Auto),
        other => Err(format!(
            "invalid value for parameter \"{ROUTE_PARAM}\": \"{other}\" (expected primary, replica or auto)"
        )),
    }
}

pub fn route_name(route: Route) -> &'static str {
    match route {
        Route::Primary => "primary",
        Route::Replica => "replica",
        Route::Auto => "auto",
    }
}

/// Recognises a statement that reads or changes `pgferry.route`. Cheap for
/// everything else: only statements starting with SET, RESET or SHOW that
/// name the parameter are looked at closely.
pub fn route_command(sql: &str) -> Option<Result<RouteCommand, String>> {
    let s = sql.trim_start();
    let verb_len = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    let verb = s.get(..verb_len)?;
    if !["set", "show", "reset"]
        .iter()
        .any(|v| verb.eq_ignore_ascii_case(v))
        || !contains_ignore_case(s, ROUTE_PARAM)
    {
        return None;
    }
    let s = s.trim_end().trim_end_matches(';').trim_end();
    let mut words = s.split_ascii_whitespace();
    let verb = words.next()?.to_ascii_lowercase();
    match verb.as_str() {
        "show" | "reset" => {
            let name = words.next()?;
            if !name.eq_ignore_ascii_case(ROUTE_PARAM) || words.next().is_some() {
                return None;
            }
            Some(Ok(if verb == "show" {
                RouteCommand::Show
            } else {
                RouteCommand::Reset
            }))
        }
        "set" => {
            let rest = s[3..].trim_start();
            let rest = strip_word(rest, "session").unwrap_or(rest);
            let rest = rest.strip_prefix_ci(ROUTE_PARAM)?.trim_start();
            let value = if let Some(v) = rest.strip_prefix('=') {
                v
            } else {
                strip_word(rest, "to")?
            };
            let value = value.trim();
            if value.eq_ignore_ascii_case("default") {
                return Some(Ok(RouteCommand::Reset));
            }
            let unquoted = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(value);
            Some(parse_route(unquoted).map(RouteCommand::Set))
        }
        _ => None,
    }
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `word` followed by whitespace at the start of `s`, case-insensitive.
fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let rest = s.strip_prefix_ci(word)?;
    rest.starts_with(|c: char| c.is_ascii_whitespace())
        .then(|| rest.trim_start())
}

trait StripCi {
    fn strip_prefix_ci(&self, prefix: &str) -> Option<&str>;
}

impl StripCi for str {
    fn strip_prefix_ci(&self, prefix: &str) -> Option<&str> {
        let head = self.get(..prefix.len())?;
        head.eq_ignore_ascii_case(prefix)
            .then(|| &self[prefix.len()..])
    }
}

/// The statement text at the head of a batch, when the first message is a
/// Query or a Parse (None for anything else, such as a Bind of a statement
/// prepared earlier).
pub fn head_text(msg: &[u8]) -> Option<&str> {
    std::str::from_utf8(head_bytes(msg)?).ok()
}

/// The SQL text of a whole `Query` or `Parse` message as bytes (up to its
/// first NUL, as Postgres reads it), without checking that it is UTF-8.
pub fn head_bytes(msg: &[u8]) -> Option<&[u8]> {
    let (&t, rest) = msg.split_first()?;
    let body = rest.get(4..)?;
    let text = match t {
        tag::QUERY => body,
        tag::PARSE => body.get(memchr::memchr(0, body)? + 1..)?,
        _ => return None,
    };
    text.get(..memchr::memchr(0, text)?)
}

/// The head's `pgferry.route` command and facts (its hint, the classifier's
/// verdict and what it does to transaction state) together.
/// A Parse's text, which clients repeat, is looked up in the router's memo
/// first (`router::memo`, keyed by `knobs.memo_key`) and remembered there
/// once classified; a Query's text, which usually carries its literals, is
/// classified every time.
pub fn head_facts(msg: &[u8], knobs: &Knobs) -> (Option<Result<RouteCommand, String>>, BatchFacts) {
    let parse = msg.first() == Some(&tag::PARSE);
    let bytes = head_bytes(msg);
    if parse {
        if let Some(f) = bytes.and_then(|b| memo::get(b, knobs.memo_key)) {
            return (None, f);
        }
    }
    // A plain SELECT (ASCII only, so valid UTF-8) is no route command and
    // answers every question at once (see `facts`).
    let (command, facts) = match bytes {
        Some(b) if classify::plain_select_bytes(b) => (None, PLAIN_SELECT),
        _ => {
            let text = bytes.and_then(|b| std::str::from_utf8(b).ok());
            // (Not `facts`: the shortcut was just tried on these bytes.)
            (
                text.and_then(route_command),
                facts_lexed(text, &knobs.policy),
            )
        }
    };
    // (A route command is answered, not routed: never remembered.)
    if let (true, None, Some(b)) = (parse, &command, bytes) {
        memo::put(b, knobs.memo_key, facts);
    }
    (command, facts)
}

/// The facts of a plain single SELECT (`classify::plain_select`).
const PLAIN_SELECT: BatchFacts = BatchFacts {
    hint: None,
    verdict: Verdict::ReadOnly,
    tx: TxEffect::None,
    plain: true,
};

/// Facts about a batch for the router: its hint, the classifier's verdict
/// and what it does to transaction state (what [`head_facts`] answers for a
/// text, without its memo; the tests' entry point).
#[cfg(test)]
pub fn facts(text: Option<&str>, policy: &FunctionPolicy) -> BatchFacts {
    // The common case answers all three questions at once.
    if text.is_some_and(classify::plain_select) {
        return PLAIN_SELECT;
    }
    facts_lexed(text, policy)
}

/// [`facts`] of a text that is not a plain SELECT (or not known to be one):
/// the lexer answers each question.
fn facts_lexed(text: Option<&str>, policy: &FunctionPolicy) -> BatchFacts {
    let Some(text) = text else {
        return BatchFacts {
            hint: None,
            verdict: Verdict::Write,
            tx: TxEffect::None,
            plain: false,
        };
    };
    BatchFacts {
        hint: classify::route_hint(text),
        // (Not `classify`: its first step is the shortcut just tried.)
        verdict: classify::classify_lexed(text, policy),
        tx: classify::tx_effect(text),
        plain: false,
    }
}

/// What pgferry answers in Postgres' place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A command with this tag and no rows (SET, RESET, ROLLBACK).
    Command(&'a str),
    /// SHOW pgferry.route: one text row.
    Show(&'a str),
}

impl RouteCommand {
    pub fn reply(self, shown: Route) -> Reply<'static> {
        match self {
            RouteCommand::Set(_) => Reply::Command("SET"),
            RouteCommand::Reset => Reply::Command("RESET"),
            RouteCommand::Show => Reply::Show(route_name(shown)),
        }
    }
}

/// Answers a statement sent with the simple protocol.
pub fn answer_simple(out: &mut BytesMut, reply: Reply<'_>, status: TxStatus) {
    match reply {
        Reply::Command(tag) => build::command_complete(out, tag),
        Reply::Show(value) => {
            row_description(out);
            data_row(out, value);
            build::command_complete(out, "SHOW");
        }
    }
    build::ready_for_query(out, status);
}

/// Answers an extended-protocol batch (Parse … Sync, all in `batch`) message
/// by message as Postgres would.
pub fn answer_extended(out: &mut BytesMut, batch: &[u8], reply: Reply<'_>, status: TxStatus) {
    let mut at = 0;
    while let Ok(Some(h)) = frame::header(&batch[at..], usize::MAX) {
        let kind = batch.get(at + frame::HEADER_LEN).copied().unwrap_or(b'P');
        match h.tag {
            tag::PARSE => put_empty(out, b'1'),
            tag::BIND => put_empty(out, b'2'),
            tag::CLOSE => put_empty(out, b'3'),
            tag::DESCRIBE => {
                if kind == b'S' {
                    // ParameterDescription with no parameters.
                    out.put_u8(b't');
                    out.put_u32(6);
                    out.put_u16(0);
                }
                match reply {
                    Reply::Show(_) => row_description(out),
                    Reply::Command(_) => put_empty(out, b'n'),
                }
            }
            tag::EXECUTE => match reply {
                Reply::Show(value) => {
                    data_row(out, value);
                    build::command_complete(out, "SHOW");
                }
                Reply::Command(t) => build::command_complete(out, t),
            },
            tag::SYNC => build::ready_for_query(out, status),
            _ => {}
        }
        at += h.total_len();
        if at >= batch.len() {
            break;
        }
    }
}

fn put_empty(out: &mut BytesMut, t: u8) {
    out.put_u8(t);
    out.put_u32(4);
}

fn row_description(out: &mut BytesMut) {
    let name = ROUTE_PARAM.as_bytes();
    out.put_u8(b'T');
    out.put_u32((4 + 2 + name.len() + 1 + 18) as u32);
    out.put_u16(1);
    out.put_slice(name);
    out.put_u8(0);
    out.put_u32(0); // table oid
    out.put_i16(0); // column number
    out.put_u32(25); // text
    out.put_i16(-1);
    out.put_i32(-1);
    out.put_i16(0); // text format
}

fn data_row(out: &mut BytesMut, value: &str) {
    out.put_u8(b'D');
    out.put_u32((4 + 2 + 4 + value.len()) as u32);
    out.put_u16(1);
    out.put_u32(value.len() as u32);
    out.put_slice(value.as_bytes());
}

/// Read-your-writes: after a write commits on the primary, reads may only go
/// to replicas that replayed past it. The commit's own LSN is not asked for
/// (that would cost a round trip per write); instead the first primary LSN
/// the monitor observes after the commit is used as the floor, which is at
/// least the commit's position. Until such an observation exists, reads go
/// to the primary.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadYourWrites {
    unresolved_since: Option<Instant>,
    floor: Option<u64>,
}

/// The floor a replica must have replayed, or "use the primary".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    None,
    Lsn(u64),
    PrimaryOnly,
}

impl ReadYourWrites {
    /// No write to read after.
    pub fn is_clear(&self) -> bool {
        self.unresolved_since.is_none() && self.floor.is_none()
    }

    pub fn wrote(&mut self, at: Instant) {
        self.unresolved_since = Some(at);
    }

    /// `observed` is (when the monitor's round finished, the primary's LSN
    /// in that round).
    pub fn floor(&mut self, observed: Option<(Instant, u64)>) -> Floor {
        if let Some(since) = self.unresolved_since {
            match observed {
                Some((taken, lsn)) if taken > since => {
                    self.floor = Some(self.floor.map_or(lsn, |f| f.max(lsn)));
                    self.unresolved_since = None;
                }
                _ => return Floor::PrimaryOnly,
            }
        }
        self.floor.map_or(Floor::None, Floor::Lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn facts_of_a_plain_select_are_the_classifiers() {
        let policy = FunctionPolicy::default();
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 7;",
            "SELECT pg_advisory_lock(1)",
            "/* pgferry: primary */ SELECT 1",
            "select * from t for update",
            "BEGIN",
            "SELECT 1; SET x = 1",
        ] {
            let f = facts(Some(sql), &policy);
            assert_eq!(f.plain, classify::plain_select(sql), "{sql}");
            assert_eq!(f.hint, classify::route_hint(sql), "{sql}");
            assert_eq!(f.verdict, classify::classify(sql, &policy), "{sql}");
            assert_eq!(f.tx, classify::tx_effect(sql), "{sql}");
        }
        assert!(facts(Some("SELECT a FROM t WHERE b = $1"), &policy).plain);
        assert!(!facts(Some("SELECT now()"), &policy).plain);
        assert!(!facts(None, &policy).plain);
    }

    #[test]
    fn head_facts_of_a_repeated_parse_come_from_the_memo_and_agree() {
        let knobs = |policy: FunctionPolicy, memo_key: u64| Knobs {
            max_message_size: 1 << 20,
            client_idle_timeout: Duration::ZERO,
            pin_error: false,
            query_timeout: Duration::ZERO,
            idle_transaction_timeout: Duration::ZERO,
            server_connect_timeout: Duration::from_secs(1),
            max_prepared_statements: 100,
            cache_unnamed_statements: false,
            policy,
            memo_key,
        };
        let parse = |sql: &str| {
            let mut m = vec![tag::PARSE, 0, 0, 0, 0, 0];
            m.extend_from_slice(sql.as_bytes());
            m.extend_from_slice(&[0, 0, 0]);
            m
        };
        let deny = knobs(FunctionPolicy::deny_list(&["lower"]), u64::MAX - 1);
        let allow = knobs(FunctionPolicy::default(), u64::MAX - 2);
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
            "SELECT lower($1)",
            "UPDATE t SET a = $1",
            "BEGIN",
            "/* pgferry: replica */ SELECT $1",
        ] {
            let msg = parse(sql);
            for k in [&deny, &allow, &deny] {
                // Twice: classified, then remembered.
                for _ in 0..2 {
                    let (command, f) = head_facts(&msg, k);
                    let want = facts(Some(sql), &k.policy);
                    assert!(command.is_none(), "{sql}");
                    assert_eq!(
                        (f.hint, f.verdict, f.tx, f.plain),
                        (want.hint, want.verdict, want.tx, want.plain),
                        "{sql}"
                    );
                }
            }
        }
        let msg = parse("SELECT lower($1)");
        assert_eq!(head_facts(&msg, &deny).1.verdict, Verdict::Write);
        assert_eq!(head_facts(&msg, &allow).1.verdict, Verdict::ReadOnly);
        // A route command is answered, never remembered as plain facts.
        let msg = parse("SET pgferry.route = 'replica'");
        for _ in 0..2 {
            assert!(head_facts(&msg, &allow).0.is_some());
        }
    }

    #[test]
    fn route_commands() {
        assert_eq!(
            route_command("SET pgferry.route = 'replica'"),
            Some(Ok(RouteCommand::Set(Route::Replica)))
        );
        assert_eq!(
            route_command("  set SESSION pgferry.route to auto ;"),
            Some(Ok(RouteCommand::Set(Route::Auto)))
        );
        assert_eq!(
            route_command("SET pgferry.route = DEFAULT"),
            Some(Ok(RouteCommand::Reset))
        );
        assert_eq!(
            route_command("RESET pgferry.route"),
            Some(Ok(RouteCommand::Reset))
        );
        assert_eq!(
            route_command("show PGFERRY.ROUTE;"),
            Some(Ok(RouteCommand::Show))
        );
        assert!(matches!(
            route_command("SET pgferry.route = 'sideways'"),
            Some(Err(_))
        ));
        assert_eq!(route_command("SELECT 'pgferry.route'"), None);
        assert_eq!(route_command("SET search_path = x"), None);
        assert_eq!(route_command("SHOW pgferry.route; SELECT 1"), None);
        assert_eq!(route_command(""), None);
    }

    #[test]
    fn head_text_of_query_and_parse() {
        let mut q = vec![b'Q', 0, 0, 0, 13];
        q.extend_from_slice(b"SELECT 1\0");
        assert_eq!(head_text(&q), Some("SELECT 1"));
        let mut p = vec![b'P', 0, 0, 0, 0];
        p.extend_from_slice(b"s1\0SELECT 2\0\0\0");
        assert_eq!(head_text(&p), Some("SELECT 2"));
        assert_eq!(head_text(b"B\0\0\0\x04"), None);
        assert_eq!(head_text(b"Q\0\0\0\x05abc"), None);
        assert_eq!(head_text(b""), None);
    }

    #[test]
    fn read_your_writes_waits_for_an_observation_after_the_write() {
        let mut r = ReadYourWrites::default();
        let t0 = Instant::now();
        assert_eq!(r.floor(None), Floor::None);
        r.wrote(t0);
        assert_eq!(
            r.floor(Some((t0 - Duration::from_millis(1), 5))),
            Floor::PrimaryOnly
        );
        assert_eq!(
            r.floor(Some((t0 + Duration::from_millis(1), 50))),
            Floor::Lsn(50)
        );
        r.wrote(t0 + Duration::from_millis(2));
        assert_eq!(r.floor(None), Floor::PrimaryOnly);
        assert_eq!(
            r.floor(Some((t0 + Duration::from_millis(3), 70))),
            Floor::Lsn(70)
        );
    }
}
