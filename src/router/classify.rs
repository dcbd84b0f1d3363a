//! Conservative read-only SQL classifier.
//!
//! Decides whether a statement may be sent to a streaming replica. This is a
//! hand-written lexer plus a few token rules, not a SQL parser: it works on
//! bytes, never allocates, never panics, and costs well under a microsecond
//! for a typical short statement.
//!
//! # The contract
//!
//! [`classify`] returns [`Verdict::ReadOnly`] only when it can show the text is
//! read-only; anything it does not understand is [`Verdict::Write`] ("send it
//! to the primary"). A text is `ReadOnly` when every statement in it (split at
//! top-level `;`) is read-only and there is at least one statement. A
//! statement is read-only when:
//!
//! * it starts (after optional opening parentheses) with `SELECT`, `WITH`,
//!   `VALUES` or `TABLE`; or it is `SHOW ...`; or it is `EXPLAIN` with
//!   optional `ANALYZE`/`VERBOSE` or a parenthesised option list, followed by
//!   one of the former (`EXPLAIN ANALYZE SELECT` merely runs a `SELECT`, which
//!   a hot standby can do);
//! * no `INSERT`, `UPDATE`, `DELETE`, `MERGE` or `INTO` keyword appears
//!   anywhere in it (this catches data-modifying CTEs, `SELECT ... INTO`,
//!   `FOR [NO KEY] UPDATE`);
//! * no `FOR SHARE` / `FOR KEY SHARE` locking clause appears (any `FOR`
//!   followed by `SHARE`, `KEY`, `NO` or `UPDATE`);
//! * no function on the policy's deny list is called, and, when the policy
//!   has an allow list, no function off that list is called (see
//!   [`FunctionPolicy`]);
//! * it contains no `U&"..."` identifier (we do not decode Unicode escapes,
//!   so such a name could hide a denied function).
//!
//! Everything else is `Write`: `SET`, `BEGIN`, `COPY` (in any direction),
//! `CALL`, `DO`, `EXECUTE`, `PREPARE`, `DECLARE`, `FETCH`, `LISTEN`, DDL,
//! utility statements, empty or comment-only text, text containing an
//! interior NUL byte, and any lexical error (unterminated string, quoted
//! identifier, dollar quote or block comment; zero-length quoted identifier).
//! Trailing NUL bytes (the terminator of a wire-protocol `Query` payload)
//! are ignored.
//!
//! Keywords are matched case-insensitively (ASCII folding, as Postgres does)
//! and only outside strings, comments and quoted identifiers. `"update"` is a
//! column name, not a keyword.
//!
//! # Lexing
//!
//! The lexer follows Postgres' `scan.l` closely where it matters for
//! deciding what is code and what is not: `'...'` with `''` escapes and
//! newline-separated continuation (`'a'\n'b'`), `E'...'` with backslash
//! escapes, `B'...'`/`X'...'` bit strings, dollar quotes `$tag$...$tag$`
//! (never confused with `$1` parameters or with `$` inside identifiers such
//! as `a$b`), `"..."` identifiers with `""` escapes, `--` line comments and
//! nested `/* */` comments, numbers that never swallow a following keyword
//! (`1into` is `1 into`), and tokens glued without spaces (`select/*c*/1`).
//!
//! `standard_conforming_strings` is a per-session setting we cannot see:
//! when it is off, backslashes escape quotes in ordinary `'...'` strings too,
//! which moves string boundaries. If any ordinary string contains a
//! backslash, the text is lexed a second time under the `off` rules and is
//! `ReadOnly` only if both readings are.
//!
//! # Function calls
//!
//! A function call is a (possibly schema-qualified, possibly double-quoted)
//! name immediately followed by `(`, comments and whitespace aside:
//! `nextval(`, `pg_catalog.nextval (`, `"nextval"(`. For the deny list only
//! the last name component matters (any schema is denied) and quoted names
//! are compared case-insensitively too, both on the safe side. In allow-list
//! mode SQL constructs that look like calls (`IN (`, `EXISTS (`, `CAST(`,
//! `COALESCE(`, `ANY (`, `OVER (`, type modifiers such as `numeric(10,2)`,
//! names after `::`/`AS`/`TABLESAMPLE`, CTE column lists `WITH x(a) AS (`)
//! are not counted as calls.
//!
//! # Limits (why `Write` is the safe answer, and what we cannot see)
//!
//! A lexer cannot know what a view, a user-defined operator, a volatile user
//! function, or a type's input function does, nor see a function on a row
//! type called in functional notation (`t.f` for `f(t)`, no parentheses),
//! or a user function that shadows a built-in name on the search path. The
//! default deny list covers built-in functions with side effects or session
//! state;
//! deployments with their own volatile functions should use
//! [`FunctionPolicy::allow_list`]. Session state (`SET`, temporary tables,
//! prepared statements) is the router's business: this module looks at one
//! text at a time.
//!
//! The routing hint (`/* pgferry:replica */`) is just a comment to
//! [`classify`]; see [`route_hint`].

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Provably read-only: may run on a streaming replica.
    ReadOnly,
    /// Anything uncertain: must go to the primary.
    Write,
}

/// An explicit routing hint found at the very start of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteHint {
    /// `/* pgferry:primary */`
    Primary,
    /// `/* pgferry:replica */`
    Replica,
}

/// What a statement does to the session's transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEffect {
    /// No transaction control (or a savepoint operation such as
    /// `ROLLBACK TO SAVEPOINT`, `SAVEPOINT`, `RELEASE`).
    None,
    /// `BEGIN` / `START TRANSACTION`; `read_only` when the modes say
    /// `READ ONLY` and never `READ WRITE`. Also reported for
    /// `COMMIT AND CHAIN` / `ROLLBACK AND CHAIN` (with `read_only: false`),
    /// because the session is inside a (new) transaction afterwards.
    Begin {
        /// `READ ONLY` was requested.
        read_only: bool,
    },
    /// `COMMIT`, `END`, `ROLLBACK`, `ABORT` (without `AND CHAIN`),
    /// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
    End,
}

/// Built-in functions that must never run on a replica: they write, need a
/// transaction id, signal other sessions, or read/alter session state that
/// lives on the primary connection. A trailing `*` matches any suffix.
///
/// Beyond the classic list this also covers large-object descriptor
/// functions (`loread`, `lo_close`, ...: descriptors belong to a session),
/// `query_to_xml*`/`cursor_to_xml*` (run an arbitrary query string / use a
/// session cursor), `dblink_*`, replication-slot and WAL-control functions
/// (`pg_promote` would promote a standby!), `pg_stat_reset*`, adminpack file
/// writers, and index-maintenance functions that write.
pub const DEFAULT_DENIED_FUNCTIONS: &[&str] = &[
    // sequences
    "nextval",
    "setval",
    "currval",
    "lastval",
    // locks, settings, notifications, transaction ids
    "pg_advisory_*",
    "pg_try_advisory_*",
    "set_config",
    "pg_notify",
    "txid_current",
    "txid_current_if_assigned",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    // WAL, backups, server control
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_logical_emit_message",
    "pg_log_standby_snapshot",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_replication_origin_*",
    "pg_stat_reset*",
    "pg_import_system_collations",
    "brin_summarize_new_values",
    "brin_summarize_range",
    "brin_desummarize_range",
    "gin_clean_pending_list",
    "pg_file_write",
    "pg_file_unlink",
    "pg_file_rename",
    "pg_file_sync",
    "binary_upgrade_*",
    // large objects (all but lo_get write or use session descriptors)
    "lo_creat",
    "lo_create",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_open",
    "lo_close",
    "lo_put",
    "lo_from_bytea",
    "lo_truncate",
    "lo_truncate64",
    "lo_lseek",
    "lo_lseek64",
    "lo_tell",
    "lo_tell64",
    "loread",
    "lowrite",
    // run arbitrary SQL
    "dblink",
    "dblink_*",
    "query_to_xml*",
    "cursor_to_xml*",
];

/// Which function calls a read-only statement may contain.
///
/// Names are stored ASCII-lowercased; a trailing `*` matches any suffix
/// (`pg_advisory_*`). Allow-list entries may be schema-qualified
/// (`myschema.f`); an unqualified allow entry matches an unqualified call or
/// one qualified with `pg_catalog`.
///
/// The deny list is always checked first, so a name on both lists is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionPolicy {
    /// Sorted, so that the patterns sharing a first byte are adjacent.
    deny: Vec<String>,
    /// A bare `*` is on the deny list: every call is denied.
    deny_all: bool,
    allow: Option<Vec<String>>,
}

impl Default for FunctionPolicy {
    /// [`DEFAULT_DENIED_FUNCTIONS`] denied, every other function allowed.
    fn default() -> Self {
        Self::deny_list(DEFAULT_DENIED_FUNCTIONS)
    }
}

impl FunctionPolicy {
    /// Deny exactly `names` (replacing the default list; include
    /// [`DEFAULT_DENIED_FUNCTIONS`] yourself to extend it); allow any other
    /// function.
    pub fn deny_list(names: &[&str]) -> Self {
        Self::new(names, None)
    }

    /// Deny-by-default: a call of any function not in `names` makes the
    /// statement `Write`. [`DEFAULT_DENIED_FUNCTIONS`] stay denied even when
    /// listed here.
    pub fn allow_list(names: &[&str]) -> Self {
        Self::new(DEFAULT_DENIED_FUNCTIONS, Some(normalize(names)))
    }

    fn new(deny: &[&str], allow: Option<Vec<String>>) -> Self {
        let mut deny = normalize(deny);
        deny.sort_unstable();
        deny.dedup();
        Self {
            deny_all: deny.iter().any(|p| p == "*"),
            deny,
            allow,
        }
    }

    /// The denied names (lowercased, sorted).
    pub fn denied(&self) -> &[String] {
        &self.deny
    }

    /// The allowed names (lowercased), when in allow-list mode.
    pub fn allowed(&self) -> Option<&[String]> {
        self.allow.as_deref()
    }

    fn is_denied(&self, name: Ident<'_>) -> bool {
        if self.deny_all {
            return true;
        }
        let Some(first) = name.text.first().map(u8::to_ascii_lowercase) else {
            return false;
        };
        let start = self
            .deny
            .partition_point(|p| p.as_bytes().first().is_some_and(|&b| b < first));
        self.deny
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|p| p.as_bytes().first() == Some(&first))
            .any(|pattern| ident_matches(name, pattern.as_bytes(), true))
    }

    fn call_ok(&self, call: &Chain<'_>, after_paren: &Lexer<'_>) -> bool {
        if self.is_denied(call.name) {
            return false;
        }
        let Some(allow) = &self.allow else {
            return true;
        };
        if call.type_ctx {
            return true;
        }
        if call.parts == 1 && !call.name.quoted && is_never_call(call.name.text) {
            return true;
        }
        if call.parts <= 2 && allow.iter().any(|entry| allow_entry_matches(entry, call)) {
            return true;
        }
        call.parts == 1 && looks_like_cte_column_list(after_paren.clone())
    }
}

fn normalize(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

fn allow_entry_matches(entry: &str, call: &Chain<'_>) -> bool {
    match (entry.split_once('.'), call.qual) {
        (Some((schema, func)), Some(qual)) => {
            ident_matches(qual, schema.as_bytes(), false)
                && ident_matches(call.name, func.as_bytes(), false)
        }
        (Some(_), None) => false,
        (None, Some(qual)) => {
            ident_matches(qual, b"pg_catalog", false)
                && ident_matches(call.name, entry.as_bytes(), false)
        }
        (None, None) => ident_matches(call.name, entry.as_bytes(), false),
    }
}

/// Does identifier `id` match lowercase `pattern` (optional trailing `*`)?
/// Unquoted identifiers fold ASCII case; quoted ones are exact unless
/// `fold_quoted` (used for the deny list, to err on the safe side).
fn ident_matches(id: Ident<'_>, pattern: &[u8], fold_quoted: bool) -> bool {
    let (pattern, text) = match pattern.strip_suffix(b"*") {
        Some(prefix) => match id.text.get(..prefix.len()) {
            Some(head) => (prefix, head),
            None => return false,
        },
        None => (pattern, id.text),
    };
    if id.quoted && !fold_quoted {
        text == pattern
    } else {
        text.eq_ignore_ascii_case(pattern)
    }
}

/// Classifies one simple-protocol `Query` string or one `Parse` statement
/// text. See the module documentation for the rules.
pub fn classify(sql: &str, policy: &FunctionPolicy) -> Verdict {
    classify_pass(sql, policy, true)
}

/// Whether `sql` is a plain single SELECT as the shortcut in `fast`
/// recognises it: read-only, no route hint, no transaction effect, no
/// function call and nothing that changes session state.
pub fn plain_select(sql: &str) -> bool {
    plain_select_bytes(sql.as_bytes())
}

/// [`plain_select`] of a text not yet checked to be UTF-8: the shortcut
/// accepts ASCII bytes only, so a text it accepts is valid UTF-8.
pub fn plain_select_bytes(sql: &[u8]) -> bool {
    fast::simple_select(sql).is_some()
}

/// [`classify`] without the plain-SELECT shortcut (`fast`): what the fuzz
/// target compares the shortcut against, and what the router asks once
/// [`plain_select`] has said no.
pub fn classify_lexed(sql: &str, policy: &FunctionPolicy) -> Verdict {
    classify_pass(sql, policy, false)
}

/// The verdict. `shortcut`: a plain single SELECT is recognised without the
/// lexer (see `fast`).
fn classify_pass(sql: &str, policy: &FunctionPolicy, shortcut: bool) -> Verdict {
    let src = sql.trim_end_matches('\0').as_bytes();
    if src.contains(&0) {
        return Verdict::Write;
    }
    if shortcut {
        if let Some(v) = fast::simple_select(src) {
            return v;
        }
    }
    let mut lexer = Lexer::new(src, true);
    match classify_text(&mut lexer, policy) {
        Ok(true) if lexer.plain_backslash => {
            // Ambiguous under standard_conforming_strings = off: both
            // readings must agree that the text is read-only.
            let mut legacy = Lexer::new(src, false);
            match classify_text(&mut legacy, policy) {
                Ok(true) => Verdict::ReadOnly,
                _ => Verdict::Write,
            }
        }
        Ok(true) => Verdict::ReadOnly,
        Ok(false) | Err(LexError) => Verdict::Write,
    }
}

/// The routing hint comment at the very start of `sql` (after optional
/// whitespace only): `/* pgferry:primary */` or `/* pgferry:replica */`,
/// case-insensitive, whitespace allowed around the words and the colon. Any
/// other first comment, or a hint anywhere else, gives `None`.
pub fn route_hint(sql: &str) -> Option<RouteHint> {
    let src = sql.as_bytes();
    let start = src.iter().position(|&b| !is_space(b))?;
    let rest = src.get(start..)?.strip_prefix(b"/*")?;
    let end = rest.windows(2).position(|w| w == b"*/")?;
    let body = trim_space(rest.get(..end)?);
    let head = body.get(..7)?;
    if !head.eq_ignore_ascii_case(b"pgferry") {
        return None;
    }
    let body = trim_space(body.get(7..)?).strip_prefix(b":")?;
    let word = trim_space(body);
    if word.eq_ignore_ascii_case(b"primary") {
        Some(RouteHint::Primary)
    } else if word.eq_ignore_ascii_case(b"replica") {
        Some(RouteHint::Replica)
    } else {
        None
    }
}

/// What `sql` does to transaction state, judged from each statement's first
/// keyword(s). For a multi-statement text the last statement with an effect
/// wins (`BEGIN; SELECT 1` is `Begin`, `SELECT 1; COMMIT` is `End`). Text
/// that does not lex is `None` (Postgres rejects the whole string, so
/// nothing runs).
///
/// `Begin { read_only: true }` vouches for the whole batch: it is reported
/// only when the `BEGIN ... READ ONLY` is the batch's first statement and no
/// later `SET`/`RESET` could switch the transaction to read-write
/// (`DELETE FROM t; BEGIN READ ONLY` and `BEGIN READ ONLY; SET TRANSACTION
/// READ WRITE; ...` are `Begin { read_only: false }`).
///
/// Notes: `ROLLBACK TO [SAVEPOINT]` is `None`; `COMMIT/ROLLBACK/END/ABORT
/// AND CHAIN` is `Begin { read_only: false }` (a new transaction is open
/// afterwards; its real read-only-ness is inherited and not visible here);
/// `COMMIT PREPARED` / `ROLLBACK PREPARED` / `PREPARE TRANSACTION` are `End`.
/// Strings are lexed with `standard_conforming_strings = on`. The
/// transaction-status byte of `ReadyForQuery` remains the authority; this is
/// a hint for deciding where to send the statement.
pub fn tx_effect(sql: &str) -> TxEffect {
    if let Some(e) = fast::no_tx_effect(sql.as_bytes()) {
        return e;
    }
    tx_effect_lexed(sql)
}

/// [`tx_effect`] of a text not yet known to be UTF-8: the byte shortcut
/// first (most statements), the lexer only for valid UTF-8; None when the
/// text is not UTF-8 and the shortcut could not tell.
pub fn tx_effect_bytes(sql: &[u8]) -> Option<TxEffect> {
    if let Some(e) = fast::no_tx_effect(sql) {
        return Some(e);
    }
    std::str::from_utf8(sql).ok().map(tx_effect_lexed)
}

/// [`tx_effect`] always with the lexer (what the fuzz target compares the
/// shortcut against).
pub fn tx_effect_lexed(sql: &str) -> TxEffect {
    let mut lexer = Lexer::new(sql.as_bytes(), true);
    tx_effect_text(&mut lexer).unwrap_or(TxEffect::None)
}

// ---------------------------------------------------------------------------
// Statement-level rules
// ---------------------------------------------------------------------------

fn classify_text(lexer: &mut Lexer<'_>, policy: &FunctionPolicy) -> Result<bool, LexError> {
    let mut seen_statement = false;
    loop {
        let first = lexer.next_token()?;
        match first {
            Tok::Eof => return Ok(seen_statement),
            Tok::Semi => continue,
            _ => {}
        }
        seen_statement = true;
        let mut stmt = Stmt::new(lexer);
        if !statement_read_only(&mut stmt, first, policy, true)? {
            return Ok(false);
        }
    }
}

/// `first` is the statement's first token (current in the lexer); `stmt`
/// yields the rest of it.
fn statement_read_only(
    stmt: &mut Stmt<'_, '_>,
    first: Tok,
    policy: &FunctionPolicy,
    top_level: bool,
) -> Result<bool, LexError> {
    let mut tok = first;
    let mut parenthesised = false;
    while tok == Tok::LParen {
        parenthesised = true;
        tok = stmt.next()?;
    }
    if tok != Tok::Word {
        return Ok(false);
    }
    match keyword(stmt.text()) {
        Kw::Select | Kw::With | Kw::Values | Kw::Table => body_read_only(stmt, tok, policy),
        Kw::Show if top_level && !parenthesised => body_read_only(stmt, tok, policy),
        Kw::Explain if top_level && !parenthesised => explain_read_only(stmt, policy),
        _ => Ok(false),
    }
}

fn explain_read_only(stmt: &mut Stmt<'_, '_>, policy: &FunctionPolicy) -> Result<bool, LexError> {
    let mut tok = stmt.next()?;
    if tok == Tok::LParen {
        let mut depth: u32 = 1;
        while depth > 0 {
            match stmt.next()? {
                Tok::Eof => return Ok(false),
                Tok::LParen => depth = depth.saturating_add(1),
                Tok::RParen => depth -= 1,
                _ => {}
            }
        }
        tok = stmt.next()?;
    } else {
        while tok == Tok::Word && matches!(keyword(stmt.text()), Kw::Analyze | Kw::Verbose) {
            tok = stmt.next()?;
        }
    }
    statement_read_only(stmt, tok, policy, false)
}

/// What came just before the current token, as far as call detection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prev {
    Other,
    /// A (possibly keyword) name: a following `(` makes it a call.
    Ident,
    /// `name.`: the next name extends the qualified chain.
    Dot,
    /// `::`, `AS` or `TABLESAMPLE`: the next name is a type, alias or
    /// sampling method, and a `(` after it is not a function call.
    TypeCtx,
}

#[derive(Debug, Clone, Copy)]
struct Ident<'a> {
    /// Unquoted: the identifier as written. Quoted: the bytes between the
    /// quotes (doubled `""` left as is).
    text: &'a [u8],
    quoted: bool,
}

/// A possibly qualified name `a.b.c`, tracked so that `(` can see it.
#[derive(Debug, Clone, Copy)]
struct Chain<'a> {
    name: Ident<'a>,
    qual: Option<Ident<'a>>,
    parts: u32,
    type_ctx: bool,
}

impl<'a> Chain<'a> {
    fn extend(chain: Option<Chain<'a>>, prev: Prev, name: Ident<'a>) -> Chain<'a> {
        match (prev, chain) {
            (Prev::Dot, Some(c)) => Chain {
                name,
                qual: Some(c.name),
                parts: c.parts.saturating_add(1),
                type_ctx: c.type_ctx,
            },
            _ => Chain {
                name,
                qual: None,
                parts: 1,
                type_ctx: prev == Prev::TypeCtx,
            },
        }
    }
}

/// Scans a statement whose kind is acceptable, starting with `first`.
fn body_read_only(
    stmt: &mut Stmt<'_, '_>,
    first: Tok,
    policy: &FunctionPolicy,
) -> Result<bool, LexError> {
    let mut tok = first;
    let mut prev = Prev::Other;
    let mut after_for = false;
    let mut chain = None;
    loop {
        let mut next_after_for = false;
        match tok {
            Tok::Eof => return Ok(true),
            Tok::Word => {
                let text = stmt.text();
                let kw = keyword(text);
                match kw {
                    Kw::Insert | Kw::Update | Kw::Delete | Kw::Merge | Kw::Into => {
                        return Ok(false)
                    }
                    Kw::Share | Kw::Key | Kw::No if after_for => return Ok(false),
                    _ => {}
                }
                next_after_for = kw == Kw::For;
                chain = Some(Chain::extend(
                    chain,
                    prev,
                    Ident {
                        text,
                        quoted: false,
                    },
                ));
                prev = if matches!(kw, Kw::As | Kw::Tablesample) {
                    Prev::TypeCtx
                } else {
                    Prev::Ident
                };
            }
            Tok::Quoted => {
                let text = stmt.text();
                chain = Some(Chain::extend(chain, prev, Ident { text, quoted: true }));
                prev = Prev::Ident;
            }
            Tok::UnicodeIdent => return Ok(false),
            Tok::Dot => {
                prev = if prev == Prev::Ident {
                    Prev::Dot
                } else {
                    Prev::Other
                };
            }
            Tok::DoubleColon => prev = Prev::TypeCtx,
            Tok::LParen => {
                if prev == Prev::Ident {
                    if let Some(call) = &chain {
                        if !policy.call_ok(call, stmt.lexer()) {
                            return Ok(false);
                        }
                    }
                }
                prev = Prev::Other;
            }
            _ => prev = Prev::Other,
        }
        after_for = next_after_for;
        tok = stmt.next()?;
    }
}

/// Allow-list mode: is the `name(` just seen the column list of a CTE,
/// `name(a, b) AS [NOT] [MATERIALIZED] (`? `lexer` is positioned after `(`.
fn looks_like_cte_column_list(mut lexer: Lexer<'_>) -> bool {
    let mut want_name = true;
    loop {
        match lexer.next_token() {
            Ok(Tok::Word | Tok::Quoted) if want_name => want_name = false,
            Ok(Tok::Comma) if !want_name => want_name = true,
            Ok(Tok::RParen) if !want_name => break,
            _ => return false,
        }
    }
    match lexer.next_token() {
        Ok(Tok::Word) if keyword(lexer.text()) == Kw::As => {}
        _ => return false,
    }
    loop {
        match lexer.next_token() {
            Ok(Tok::LParen) => return true,
            Ok(Tok::Word) if matches!(keyword(lexer.text()), Kw::Not | Kw::Materialized) => {}
            _ => return false,
        }
    }
}

fn tx_effect_text(lexer: &mut Lexer<'_>) -> Result<TxEffect, LexError> {
    let mut effect = TxEffect::None;
    let mut statements: usize = 0;
    loop {
        let kw = match lexer.next_token()? {
            Tok::Eof => return Ok(effect),
            Tok::Semi => continue,
            Tok::Word => keyword(lexer.text()),
            _ => Kw::Other,
        };
        statements += 1;
        let mut stmt = Stmt::new(lexer);
        let this = match kw {
            Kw::Begin => begin_modes(&mut stmt)?,
            Kw::Start => match stmt.next_kw()? {
                Some(Kw::Transaction) => begin_modes(&mut stmt)?,
                _ => TxEffect::None,
            },
            Kw::Commit | Kw::End | Kw::Rollback | Kw::Abort => end_effect(&mut stmt)?,
            Kw::Prepare => match stmt.next_kw()? {
                Some(Kw::Transaction) => TxEffect::End,
                _ => TxEffect::None,
            },
            _ => TxEffect::None,
        };
        stmt.finish()?;
        match this {
            // A read-only transaction vouches for the whole batch only when
            // it opens the batch: earlier statements ran outside it.
            TxEffect::Begin { read_only: true } if statements > 1 => {
                effect = TxEffect::Begin { read_only: false };
            }
            TxEffect::None => {
                // `SET TRANSACTION READ WRITE`, `SET transaction_read_only`...
                if matches!(kw, Kw::Set | Kw::Reset)
                    && effect == (TxEffect::Begin { read_only: true })
                {
                    effect = TxEffect::Begin { read_only: false };
                }
            }
            _ => effect = this,
        }
    }
}

fn begin_modes(stmt: &mut Stmt<'_, '_>) -> Result<TxEffect, LexError> {
    let (mut read_only, mut read_write, mut prev) = (false, false, Kw::Other);
    while let Some(kw) = stmt.next_kw()? {
        match (prev, kw) {
            (Kw::Read, Kw::Only) => read_only = true,
            (Kw::Read, Kw::Write) => read_write = true,
            _ => {}
        }
        prev = kw;
    }
    Ok(TxEffect::Begin {
        read_only: read_only && !read_write,
    })
}

fn end_effect(stmt: &mut Stmt<'_, '_>) -> Result<TxEffect, LexError> {
    let (mut savepoint, mut chain, mut prev) = (false, false, Kw::Other);
    while let Some(kw) = stmt.next_kw()? {
        match (prev, kw) {
            (_, Kw::To) => savepoint = true,
            (Kw::And, Kw::Chain) => chain = true,
            _ => {}
        }
        prev = kw;
    }
    Ok(if savepoint {
        TxEffect::None
    } else if chain {
        TxEffect::Begin { read_only: false }
    } else {
        TxEffect::End
    })
}

// ---------------------------------------------------------------------------
// Keywords
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Other,
    Select,
    With,
    Values,
    Table,
    Show,
    Explain,
    Analyze,
    Verbose,
    Insert,
    Update,
    Delete,
    Merge,
    Into,
    For,
    Share,
    Key,
    No,
    As,
    Not,
    Materialized,
    Tablesample,
    Begin,
    Start,
    Transaction,
    Commit,
    End,
    Rollback,
    Abort,
    Prepare,
    Read,
    Only,
    Write,
    To,
    And,
    Chain,
    Set,
    Reset,
}

/// Lowercases `word` into a stack buffer and hands it to `f`; words longer
/// than the buffer are no keyword we know, so `f` is not called.
fn with_lowercase<R>(word: &[u8], default: R, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = [0u8; 20];
    match buf.get_mut(..word.len()) {
        Some(dst) => {
            for (d, s) in dst.iter_mut().zip(word) {
                *d = s.to_ascii_lowercase();
            }
            f(dst)
        }
        None => default,
    }
}

/// `word` (at most 8 bytes, no NUL) packed big-endian into a `u64`: an
/// injective key, since identifier bytes are never 0.
const fn pack(word: &[u8]) -> u64 {
    let mut key = 0u64;
    let mut rest = word;
    while let [b, tail @ ..] = rest {
        key = (key << 8) | *b as u64;
        rest = tail;
    }
    key
}

/// Packed keys of the keywords of at most 8 bytes.
mod keys {
    use super::pack;

    pub(super) const SELECT: u64 = pack(b"select");
    pub(super) const WITH: u64 = pack(b"with");
    pub(super) const VALUES: u64 = pack(b"values");
    pub(super) const TABLE: u64 = pack(b"table");
    pub(super) const SHOW: u64 = pack(b"show");
    pub(super) const EXPLAIN: u64 = pack(b"explain");
    pub(super) const ANALYZE: u64 = pack(b"analyze");
    pub(super) const ANALYSE: u64 = pack(b"analyse");
    pub(super) const VERBOSE: u64 = pack(b"verbose");
    pub(super) const INSERT: u64 = pack(b"insert");
    pub(super) const UPDATE: u64 = pack(b"update");
    pub(super) const DELETE: u64 = pack(b"delete");
    pub(super) const MERGE: u64 = pack(b"merge");
    pub(super) const INTO: u64 = pack(b"into");
    pub(super) const FOR: u64 = pack(b"for");
    pub(super) const SHARE: u64 = pack(b"share");
    pub(super) const KEY: u64 = pack(b"key");
    pub(super) const NO: u64 = pack(b"no");
    pub(super) const AS: u64 = pack(b"as");
    pub(super) const NOT: u64 = pack(b"not");
    pub(super) const BEGIN: u64 = pack(b"begin");
    pub(super) const START: u64 = pack(b"start");
    pub(super) const COMMIT: u64 = pack(b"commit");
    pub(super) const END: u64 = pack(b"end");
    pub(super) const ROLLBACK: u64 = pack(b"rollback");
    pub(super) const ABORT: u64 = pack(b"abort");
    pub(super) const PREPARE: u64 = pack(b"prepare");
    pub(super) const READ: u64 = pack(b"read");
    pub(super) const ONLY: u64 = pack(b"only");
    pub(super) const WRITE: u64 = pack(b"write");
    pub(super) const TO: u64 = pack(b"to");
    pub(super) const AND: u64 = pack(b"and");
    pub(super) const CHAIN: u64 = pack(b"chain");
    pub(super) const SET: u64 = pack(b"set");
    pub(super) const RESET: u64 = pack(b"reset");
}

fn keyword(word: &[u8]) -> Kw {
    match word.len() {
        2..=8 => {}
        11 | 12 => {
            return if word.eq_ignore_ascii_case(b"transaction") {
                Kw::Transaction
            } else if word.eq_ignore_ascii_case(b"tablesample") {
                Kw::Tablesample
            } else if word.eq_ignore_ascii_case(b"materialized") {
                Kw::Materialized
            } else {
                Kw::Other
            };
        }
        _ => return Kw::Other,
    }
    let mut key = 0u64;
    for &b in word {
        key = (key << 8) | u64::from(b.to_ascii_lowercase());
    }
    match key {
        keys::SELECT => Kw::Select,
        keys::WITH => Kw::With,
        keys::VALUES => Kw::Values,
        keys::TABLE => Kw::Table,
        keys::SHOW => Kw::Show,
        keys::EXPLAIN => Kw::Explain,
        keys::ANALYZE | keys::ANALYSE => Kw::Analyze,
        keys::VERBOSE => Kw::Verbose,
        keys::INSERT => Kw::Insert,
        keys::UPDATE => Kw::Update,
        keys::DELETE => Kw::Delete,
        keys::MERGE => Kw::Merge,
        keys::INTO => Kw::Into,
        keys::FOR => Kw::For,
        keys::SHARE => Kw::Share,
        keys::KEY => Kw::Key,
        keys::NO => Kw::No,
        keys::AS => Kw::As,
        keys::NOT => Kw::Not,
        keys::BEGIN => Kw::Begin,
        keys::START => Kw::Start,
        keys::COMMIT => Kw::Commit,
        keys::END => Kw::End,
        keys::ROLLBACK => Kw::Rollback,
        keys::ABORT => Kw::Abort,
        keys::PREPARE => Kw::Prepare,
        keys::READ => Kw::Read,
        keys::ONLY => Kw::Only,
        keys::WRITE => Kw::Write,
        keys::TO => Kw::To,
        keys::AND => Kw::And,
        keys::CHAIN => Kw::Chain,
        keys::SET => Kw::Set,
        keys::RESET => Kw::Reset,
        _ => Kw::Other,
    }
}

/// Unquoted words that may be followed by `(` without being a function call
/// (SQL constructs, keywords before a parenthesised expression, type names
/// with modifiers). Only consulted in allow-list mode.
fn is_never_call(word: &[u8]) -> bool {
    with_lowercase(word, false, |w| {
        matches!(
            w,
            b"all"
                | b"and"
                | b"any"
                | b"array"
                | b"as"
                | b"asymmetric"
                | b"between"
                | b"bit"
                | b"by"
                | b"case"
                | b"cast"
                | b"char"
                | b"character"
                | b"coalesce"
                | b"cube"
                | b"current_time"
                | b"current_timestamp"
                | b"dec"
                | b"decimal"
                | b"distinct"
                | b"else"
                | b"escape"
                | b"except"
                | b"exists"
                | b"extract"
                | b"filter"
                | b"first"
                | b"float"
                | b"for"
                | b"from"
                | b"greatest"
                | b"group"
                | b"grouping"
                | b"having"
                | b"ilike"
                | b"in"
                | b"intersect"
                | b"interval"
                | b"is"
                | b"join"
                | b"json"
                | b"json_array"
                | b"json_arrayagg"
                | b"json_exists"
                | b"json_object"
                | b"json_objectagg"
                | b"json_query"
                | b"json_scalar"
                | b"json_serialize"
                | b"json_table"
                | b"json_value"
                | b"lateral"
                | b"least"
                | b"like"
                | b"limit"
                | b"localtime"
                | b"localtimestamp"
                | b"materialized"
                | b"national"
                | b"nchar"
                | b"next"
                | b"normalize"
                | b"not"
                | b"nullif"
                | b"numeric"
                | b"offset"
                | b"on"
                | b"only"
                | b"operator"
                | b"or"
                | b"over"
                | b"overlaps"
                | b"overlay"
                | b"position"
                | b"repeatable"
                | b"rollup"
                | b"row"
                | b"select"
                | b"sets"
                | b"similar"
                | b"some"
                | b"substring"
                | b"symmetric"
                | b"then"
                | b"time"
                | b"timestamp"
                | b"to"
                | b"treat"
                | b"trim"
                | b"union"
                | b"using"
                | b"values"
                | b"varchar"
                | b"varying"
                | b"when"
                | b"where"
                | b"within"
                | b"xmlattributes"
                | b"xmlconcat"
                | b"xmlelement"
                | b"xmlexists"
                | b"xmlforest"
                | b"xmlnamespaces"
                | b"xmlparse"
                | b"xmlpi"
                | b"xmlroot"
                | b"xmlserialize"
                | b"xmltable"
                | b"zone"
        )
    })
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

/// Token kinds. The lexer keeps the current token's span (see
/// [`Lexer::text`]), so a token is one byte and travels in a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// Unquoted identifier or keyword; `text()` is the word.
    Word,
    /// `"..."` identifier; `text()` is the bytes between the quotes.
    Quoted,
    /// `U&"..."` identifier (escapes not decoded).
    UnicodeIdent,
    /// Any string constant, including dollar-quoted ones.
    Str,
    Num,
    /// `$1`
    Param,
    LParen,
    RParen,
    Comma,
    Semi,
    Dot,
    DoubleColon,
    /// Any other operator or punctuation byte.
    Op,
    /// End of input (or, from [`Stmt`], end of the statement).
    Eof,
}

/// Unterminated string/identifier/comment or otherwise unlexable input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LexError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrKind {
    /// `'...'` (and `N'...'`, `U&'...'`): backslash escapes only when
    /// standard_conforming_strings is off.
    Plain,
    /// `E'...'`: backslash escapes.
    Escape,
    /// `B'...'`, `X'...'`: no escapes at all, not even `''`.
    Bits,
}

#[derive(Debug, Clone)]
struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    /// Span of the current `Word`/`Quoted` token's text.
    text_start: usize,
    text_end: usize,
    /// standard_conforming_strings
    scs: bool,
    /// A backslash was seen inside a plain string (lexed with `scs` on).
    plain_backslash: bool,
}

/// Postgres' `space`: `[ \t\n\r\f\v]` (also exactly the ASCII whitespace
/// `str::trim` skips).
pub const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn trim_space(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Index of the next `\n`/`\r` at or after `i`, or the end.
fn line_end(src: &[u8], i: usize) -> usize {
    match src.get(i..) {
        Some(rest) => rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .map_or(src.len(), |n| i + n),
        None => src.len(),
    }
}

/// If the closing quote that ended before `i` is followed by Postgres'
/// `{whitespace_with_newline}{quote}`, the string continues: returns the
/// index just after that quote.
fn quote_continuation(src: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match src.get(i) {
            Some(b' ' | b'\t' | 0x0c) => i += 1,
            Some(b'-') if src.get(i + 1) == Some(&b'-') => i = line_end(src, i),
            _ => break,
        }
    }
    match src.get(i) {
        Some(b'\n' | b'\r') => i += 1,
        _ => return None,
    }
    loop {
        match src.get(i) {
            Some(&b) if is_space(b) => i += 1,
            Some(b'-') if src.get(i + 1) == Some(&b'-') => {
                i = line_end(src, i);
                match src.get(i) {
                    Some(b'\n' | b'\r') => i += 1,
                    _ => return None,
                }
            }
            _ => break,
        }
    }
    match src.get(i) {
        Some(b'\'') => Some(i + 1),
        _ => None,
    }
}

/// If `src[p]` starts a dollar-quote delimiter `$tag$` / `$$`, the index of
/// its closing `$`.
fn dollar_delimiter_end(src: &[u8], p: usize) -> Option<usize> {
    let mut q = p + 1;
    if src.get(q).is_some_and(|&b| is_ident_start(b)) {
        q += 1;
        while src
            .get(q)
            .is_some_and(|&b| is_ident_start(b) || b.is_ascii_digit())
        {
            q += 1;
        }
    }
    (src.get(q) == Some(&b'$')).then_some(q)
}

impl<'a> Lexer<'a> {
    fn new(src: &'a [u8], scs: bool) -> Self {
        Self {
            src,
            pos: 0,
            text_start: 0,
            text_end: 0,
            scs,
            plain_backslash: false,
        }
    }

    /// The text of the current `Word` or `Quoted` token.
    fn text(&self) -> &'a [u8] {
        self.src
            .get(self.text_start..self.text_end)
            .unwrap_or_default()
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.src.get(self.pos.saturating_add(offset)).copied()
    }

    fn skip_trivia(&mut self) -> Result<(), LexError> {
        loop {
            match self.peek(0) {
                Some(b) if is_space(b) => self.pos += 1,
                Some(b'-') if self.peek(1) == Some(b'-') => {
                    self.pos = line_end(self.src, self.pos);
                }
                Some(b'/') if self.peek(1) == Some(b'*') => self.skip_block_comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// At `/*`. Postgres block comments nest.
    fn skip_block_comment(&mut self) -> Result<(), LexError> {
        let mut depth: usize = 0;
        let mut i = self.pos;
        loop {
            match (self.src.get(i), self.src.get(i + 1)) {
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    i += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth = depth.saturating_sub(1);
                    i += 2;
                    if depth == 0 {
                        self.pos = i;
                        return Ok(());
                    }
                }
                (Some(_), _) => i += 1,
                (None, _) => return Err(LexError),
            }
        }
    }

    fn next_token(&mut self) -> Result<Tok, LexError> {
        self.skip_trivia()?;
        let Some(b) = self.peek(0) else {
            return Ok(Tok::Eof);
        };
        let tok = match b {
            b'\'' => {
                self.string(StrKind::Plain)?;
                Tok::Str
            }
            b'"' => {
                self.quoted_ident()?;
                Tok::Quoted
            }
            b'$' => self.dollar()?,
            b'0'..=b'9' => {
                self.number();
                Tok::Num
            }
            b'.' if self.peek(1).is_some_and(|c| c.is_ascii_digit()) => {
                self.number();
                Tok::Num
            }
            b':' if self.peek(1) == Some(b':') => {
                self.pos += 2;
                Tok::DoubleColon
            }
            _ if is_ident_start(b) => self.word()?,
            _ => {
                self.pos += 1;
                match b {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b',' => Tok::Comma,
                    b';' => Tok::Semi,
                    b'.' => Tok::Dot,
                    _ => Tok::Op,
                }
            }
        };
        Ok(tok)
    }

    fn word(&mut self) -> Result<Tok, LexError> {
        let start = self.pos;
        let mut end = start + 1;
        while self.src.get(end).is_some_and(|&b| is_ident_cont(b)) {
            end += 1;
        }
        self.pos = end;
        if end == start + 1 {
            let letter = self.src.get(start).copied().unwrap_or_default();
            match (letter, self.peek(0), self.peek(1)) {
                (b'e' | b'E', Some(b'\''), _) => {
                    self.string(StrKind::Escape)?;
                    return Ok(Tok::Str);
                }
                (b'b' | b'B' | b'x' | b'X', Some(b'\''), _) => {
                    self.string(StrKind::Bits)?;
                    return Ok(Tok::Str);
                }
                (b'u' | b'U', Some(b'&'), Some(b'"')) => {
                    self.pos += 1;
                    self.quoted_ident()?;
                    return Ok(Tok::UnicodeIdent);
                }
                _ => {}
            }
        }
        self.text_start = start;
        self.text_end = end;
        Ok(Tok::Word)
    }

    /// At the opening quote of a string constant.
    fn string(&mut self, kind: StrKind) -> Result<(), LexError> {
        let backslash_escapes = match kind {
            StrKind::Plain => !self.scs,
            StrKind::Escape => true,
            StrKind::Bits => false,
        };
        let mut i = self.pos + 1;
        loop {
            match self.src.get(i) {
                None => return Err(LexError),
                Some(b'\'') => {
                    if kind != StrKind::Bits && self.src.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    match quote_continuation(self.src, i) {
                        Some(next) => i = next,
                        None => {
                            self.pos = i;
                            return Ok(());
                        }
                    }
                }
                Some(b'\\') => {
                    if kind == StrKind::Plain && self.scs {
                        self.plain_backslash = true;
                    }
                    i += if backslash_escapes { 2 } else { 1 };
                }
                Some(_) => i += 1,
            }
        }
    }

    /// At the opening `"`; the text span becomes the bytes between quotes.
    fn quoted_ident(&mut self) -> Result<(), LexError> {
        let start = self.pos + 1;
        let mut i = start;
        loop {
            match self.src.get(i) {
                None => return Err(LexError),
                Some(b'"') if self.src.get(i + 1) == Some(&b'"') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        if i == start {
            // Zero-length delimited identifier: a Postgres syntax error.
            return Err(LexError);
        }
        self.text_start = start;
        self.text_end = i;
        self.pos = i + 1;
        Ok(())
    }

    /// At `$`: a parameter, a dollar-quoted string, or a lone `$`.
    fn dollar(&mut self) -> Result<Tok, LexError> {
        if self.peek(1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            self.digits();
            return Ok(Tok::Param);
        }
        let start = self.pos;
        let Some(open_end) = dollar_delimiter_end(self.src, start) else {
            self.pos += 1;
            return Ok(Tok::Op);
        };
        let delimiter = self.src.get(start..=open_end).unwrap_or_default();
        // Like scan.l: at each `$`, try a delimiter; on a mismatch resume at
        // its last `$` (which may open the real closing delimiter). Linear.
        let mut i = open_end + 1;
        loop {
            let p = match self
                .src
                .get(i..)
                .and_then(|s| s.iter().position(|&b| b == b'$'))
            {
                Some(n) => i + n,
                None => return Err(LexError),
            };
            match dollar_delimiter_end(self.src, p) {
                Some(q) => {
                    if self.src.get(p..=q) == Some(delimiter) {
                        self.pos = q + 1;
                        return Ok(Tok::Str);
                    }
                    i = q;
                }
                None => i = p + 1,
            }
        }
    }

    fn digits(&mut self) {
        loop {
            match self.peek(0) {
                Some(b'0'..=b'9') => self.pos += 1,
                Some(b'_') if self.peek(1).is_some_and(|b| b.is_ascii_digit()) => self.pos += 2,
                _ => return,
            }
        }
    }

    /// At a digit, or at `.` followed by a digit. Never consumes letters
    /// other than an exponent marker followed by digits, so `1into` is `1`
    /// then `into` (as older servers read it).
    fn number(&mut self) {
        if self.peek(0) == Some(b'.') {
            self.pos += 1;
            self.digits();
        } else {
            self.digits();
            if self.peek(0) == Some(b'.') && self.peek(1) != Some(b'.') {
                self.pos += 1;
                self.digits();
            }
        }
        if matches!(self.peek(0), Some(b'e' | b'E')) {
            match (self.peek(1), self.peek(2)) {
                (Some(b'0'..=b'9'), _) => {
                    self.pos += 1;
                    self.digits();
                }
                (Some(b'+' | b'-'), Some(b'0'..=b'9')) => {
                    self.pos += 2;
                    self.digits();
                }
                _ => {}
            }
        }
    }
}

/// The tokens of one statement: yields `Eof` (for good) at `;` or end of
/// input.
struct Stmt<'l, 'a> {
    lexer: &'l mut Lexer<'a>,
    done: bool,
}

impl<'l, 'a> Stmt<'l, 'a> {
    fn new(lexer: &'l mut Lexer<'a>) -> Self {
        Self { lexer, done: false }
    }

    fn lexer(&self) -> &Lexer<'a> {
        self.lexer
    }

    fn text(&self) -> &'a [u8] {
        self.lexer.text()
    }

    fn next(&mut self) -> Result<Tok, LexError> {
        if self.done {
            return Ok(Tok::Eof);
        }
        match self.lexer.next_token()? {
            Tok::Semi | Tok::Eof => {
                self.done = true;
                Ok(Tok::Eof)
            }
            tok => Ok(tok),
        }
    }

    /// The next token as a keyword (`Kw::Other` for non-keywords and
    /// non-words, including quoted identifiers); `None` at the end.
    fn next_kw(&mut self) -> Result<Option<Kw>, LexError> {
        Ok(match self.next()? {
            Tok::Eof => None,
            Tok::Word => Some(keyword(self.text())),
            _ => Some(Kw::Other),
        })
    }

    fn finish(&mut self) -> Result<(), LexError> {
        while self.next()? != Tok::Eof {}
        Ok(())
    }
}

mod fast;

#[cfg(test)]
mod tests;
