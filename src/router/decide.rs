//! Which route a batch takes: pure decisions over the hint, the session's
//! setting, the database default and the classifier's verdict.

use super::classify::{RouteHint, TxEffect, Verdict};
use crate::config::Route;

/// Where one transaction or standalone statement should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Primary,
    /// A replica; `retry_safe` when the batch is a standalone read-only
    /// statement that may be re-run elsewhere if the replica goes away before
    /// answering.
    Replica {
        retry_safe: bool,
    },
}

/// What the router knows about the batch that starts a transaction.
#[derive(Debug, Clone, Copy)]
pub struct BatchFacts {
    pub hint: Option<RouteHint>,
    pub verdict: Verdict,
    pub tx: TxEffect,
    /// The head is a plain single SELECT (`classify::plain_select`): it
    /// cannot change session state, so the pump need not look at it again.
    pub plain: bool,
}

/// Highest first: the hint comment, the session's `pgferry.route`, the
/// database's `route`. `auto` sends only provably read-only work to a
/// replica: a read-only statement outside a transaction block, or a
/// transaction opened with BEGIN READ ONLY.
pub fn decide(facts: &BatchFacts, session: Option<Route>, default: Route) -> Want {
    let route = match facts.hint {
        Some(RouteHint::Primary) => Route::Primary,
        Some(RouteHint::Replica) => Route::Replica,
        None => session.unwrap_or(default),
    };
    match route {
        Route::Primary => Want::Primary,
        Route::Replica => Want::Replica {
            retry_safe: facts.verdict == Verdict::ReadOnly,
        },
        Route::Auto => match (facts.tx, facts.verdict) {
            (TxEffect::Begin { read_only: true }, _) => Want::Replica { retry_safe: false },
            (TxEffect::None, Verdict::ReadOnly) => Want::Replica { retry_safe: true },
            _ => Want::Primary,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(hint: Option<RouteHint>, verdict: Verdict, tx: TxEffect) -> BatchFacts {
        BatchFacts {
            hint,
            verdict,
            tx,
            plain: false,
        }
    }

    #[test]
    fn precedence_and_auto() {
        let ro = facts(None, Verdict::ReadOnly, TxEffect::None);
        let w = facts(None, Verdict::Write, TxEffect::None);
        assert_eq!(decide(&ro, None, Route::Primary), Want::Primary);
        assert_eq!(
            decide(&ro, None, Route::Auto),
            Want::Replica { retry_safe: true }
        );
        assert_eq!(decide(&w, None, Route::Auto), Want::Primary);
        assert_eq!(
            decide(&ro, Some(Route::Primary), Route::Auto),
            Want::Primary
        );
        assert_eq!(
            decide(&w, Some(Route::Replica), Route::Primary),
            Want::Replica { retry_safe: false }
        );
        let hinted = facts(Some(RouteHint::Replica), Verdict::Write, TxEffect::None);
        assert_eq!(
            decide(&hinted, Some(Route::Primary), Route::Primary),
            Want::Replica { retry_safe: false }
        );
        let hinted = facts(Some(RouteHint::Primary), Verdict::ReadOnly, TxEffect::None);
        assert_eq!(
            decide(&hinted, Some(Route::Replica), Route::Auto),
            Want::Primary
        );
        let begin_ro = facts(None, Verdict::Write, TxEffect::Begin { read_only: true });
        assert_eq!(
            decide(&begin_ro, None, Route::Auto),
            Want::Replica { retry_safe: false }
        );
        let begin = facts(None, Verdict::Write, TxEffect::Begin { read_only: false });
        assert_eq!(decide(&begin, None, Route::Auto), Want::Primary);
    }
}
