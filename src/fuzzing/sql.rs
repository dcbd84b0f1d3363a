//! Fuzz entry point for the SQL text inspectors: the read-only classifier,
//! routing hints, transaction effects and session-state tracking.

use crate::client::replay::SessionState;
use crate::router::classify::{self as classifier, FunctionPolicy, RouteHint};

/// `data[0]` picks the function policy and the session flags; the rest is
/// SQL text (lossy UTF-8, as the pumps see a Query after validation).
pub fn classify(data: &[u8]) {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let sql = String::from_utf8_lossy(text);
    let policy = match sel % 3 {
        0 => FunctionPolicy::default(),
        1 => FunctionPolicy::deny_list(&["my_writer", "audit.*", "nextval"]),
        _ => FunctionPolicy::allow_list(&["lower", "public.safe_fn", "pg_catalog.*"]),
    };
    let verdict = classifier::classify(&sql, &policy);
    let hint = classifier::route_hint(&sql);
    let effect = classifier::tx_effect(&sql);
    // A plain SELECT is what the router takes it for, and leaves session
    // state alone (the pump skips it).
    if classifier::plain_select(&sql) {
        assert_eq!(verdict, classifier::Verdict::ReadOnly, "{sql:?}");
        assert_eq!(hint, None, "{sql:?}");
        assert_eq!(effect, classifier::TxEffect::None, "{sql:?}");
        assert!(!SessionState::may_observe(sql.as_bytes()), "{sql:?}");
    }
    // The shortcuts agree with the lexer.
    if let Ok(exact) = std::str::from_utf8(text) {
        assert_eq!(
            classifier::tx_effect_bytes(text),
            Some(classifier::tx_effect(exact)),
            "{exact:?}"
        );
    }
    assert_eq!(classifier::tx_effect_lexed(&sql), effect, "{sql:?}");
    assert_eq!(
        classifier::classify_lexed(&sql, &policy),
        verdict,
        "{sql:?}"
    );
    if let Some(h) = hint {
        assert!(
            sql.trim_start().starts_with("/*"),
            "{h:?} without a comment"
        );
        assert!(matches!(h, RouteHint::Primary | RouteHint::Replica));
    }
    // Leading whitespace never changes what a statement is.
    let spaced = format!(" \n\t{sql}");
    assert_eq!(classifier::classify(&spaced, &policy), verdict, "{sql:?}");
    assert_eq!(classifier::route_hint(&spaced), hint, "{sql:?}");
    assert_eq!(classifier::tx_effect(&spaced), effect, "{sql:?}");

    session(&sql, sel & 8 != 0, sel & 16 != 0);
}

/// The whole text as one statement, then line by line as a session would
/// send it: the state stays bounded and its generation never goes back.
fn session(sql: &str, named: bool, in_block: bool) {
    // What the pump skips changes nothing.
    if !SessionState::may_observe(sql.as_bytes()) {
        let mut skipped = SessionState::default();
        skipped.observe(sql, false, in_block);
        assert_eq!(skipped, SessionState::default(), "{sql:?}");
    }
    let mut state = SessionState::default();
    state.observe(sql, named, in_block);
    let mut generation = state.generation;
    for line in sql.lines() {
        state.observe(line, false, in_block);
        assert!(state.generation >= generation);
        generation = state.generation;
        assert!(state.sets.iter().count() <= 256);
    }
}
