//! Hysteresis for one node: its health from consecutive probe outcomes, and
//! (for a replica) whether it is excluded for lag. Sans-IO: callers feed
//! outcomes and get back the transition, if any, to log.
//!
//! Both trackers are deliberately asymmetric: one bad observation is enough
//! to stop sending new work (cheap to undo, and sending work to a failing
//! node is what hurts clients), while coming back takes several good ones in
//! a row, so a flapping node does not make routing flap with it.

use std::fmt;

/// A node's health as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Answering probes; gets work.
    Up,
    /// Its last probe failed (or it was never probed): no new work, probed at
    /// the suspect interval until it is either up or down.
    Suspect,
    /// `down_after` consecutive failures.
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Up => "up",
            Health::Suspect => "suspect",
            Health::Down => "down",
        })
    }
}

/// A change of health, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthChange {
    pub from: Health,
    pub to: Health,
}

/// Consecutive-outcome counting for one node.
#[derive(Debug, Clone, Default)]
pub struct HealthTracker {
    /// `None` until the first outcome: a node nobody has probed yet shows as
    /// suspect, and its first outcome decides directly (no hysteresis), so
    /// that a freshly started proxy routes after one round instead of
    /// `up_after`.
    state: Option<Health>,
    failures: u32,
    successes: u32,
}

impl HealthTracker {
    pub fn health(&self) -> Health {
        self.state.unwrap_or(Health::Suspect)
    }

    /// Consecutive failures so far (0 after a good probe).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn record_success(&mut self, up_after: u32) -> Option<HealthChange> {
        self.failures = 0;
        self.successes = self.successes.saturating_add(1);
        let to = match self.state {
            None | Some(Health::Up) => Health::Up,
            Some(_) if self.successes >= up_after.max(1) => Health::Up,
            Some(h) => h,
        };
        self.set(to)
    }

    pub fn record_failure(&mut self, down_after: u32) -> Option<HealthChange> {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        let to = if self.failures >= down_after.max(1) {
            Health::Down
        } else {
            Health::Suspect
        };
        self.set(to)
    }

    fn set(&mut self, to: Health) -> Option<HealthChange> {
        let from = self.health();
        self.state = Some(to);
        (from != to).then_some(HealthChange { from, to })
    }
}

/// What one round says about a replica's lag against the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagVerdict {
    /// Over at least one limit.
    Over,
    /// Within every configured limit.
    Within,
    /// Not enough data this round (for example the primary did not answer,
    /// so there is no byte lag to compare): no evidence either way.
    Unknown,
}

/// Lag exclusion with hysteresis: out at the first round over a limit, back
/// in after `up_after` consecutive rounds within all limits.
#[derive(Debug, Clone, Default)]
pub struct LagTracker {
    excluded: bool,
    within: u32,
}

impl LagTracker {
    pub fn excluded(&self) -> bool {
        self.excluded
    }

    /// Returns the new exclusion state when it changed.
    pub fn record(&mut self, verdict: LagVerdict, up_after: u32) -> Option<bool> {
        match verdict {
            LagVerdict::Unknown => None,
            LagVerdict::Over => {
                self.within = 0;
                (!self.excluded).then(|| {
                    self.excluded = true;
                    true
                })
            }
            LagVerdict::Within => {
                if !self.excluded {
                    return None;
                }
                self.within = self.within.saturating_add(1);
                (self.within >= up_after.max(1)).then(|| {
                    self.excluded = false;
                    self.within = 0;
                    false
                })
            }
        }
    }

    /// The node is no longer a replica: lag no longer applies. Returns
    /// `Some(false)` when that lifted an exclusion.
    pub fn reset(&mut self) -> Option<bool> {
        let was = self.excluded;
        *self = LagTracker::default();
        was.then_some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN_AFTER: u32 = 3;
    const UP_AFTER: u32 = 2;

    fn up() -> HealthTracker {
        let mut t = HealthTracker::default();
        t.record_success(UP_AFTER);
        assert_eq!(t.health(), Health::Up);
        t
    }

    #[test]
    fn unprobed_is_suspect_and_first_outcome_decides() {
        let t = HealthTracker::default();
        assert_eq!(t.health(), Health::Suspect);

        let mut t = HealthTracker::default();
        assert_eq!(
            t.record_success(UP_AFTER),
            Some(HealthChange {
                from: Health::Suspect,
                to: Health::Up
            })
        );

        let mut t = HealthTracker::default();
        assert_eq!(t.record_failure(DOWN_AFTER), None, "still suspect");
        assert_eq!(t.health(), Health::Suspect);
    }

    #[test]
    fn one_failure_is_suspect_and_down_after_n() {
        let mut t = up();
        assert_eq!(
            t.record_failure(DOWN_AFTER),
            Some(HealthChange {
                from: Health::Up,
                to: Health::Suspect
            })
        );
        assert_eq!(t.record_failure(DOWN_AFTER), None);
        assert_eq!(t.health(), Health::Suspect);
        assert_eq!(
            t.record_failure(DOWN_AFTER),
            Some(HealthChange {
                from: Health::Suspect,
                to: Health::Down
            })
        );
        assert_eq!(t.record_failure(DOWN_AFTER), None, "down stays down");
        assert_eq!(t.failures(), 4);
    }

    #[test]
    fn coming_back_takes_up_after_goods_in_a_row() {
        let mut t = up();
        for _ in 0..DOWN_AFTER {
            t.record_failure(DOWN_AFTER);
        }
        assert_eq!(t.health(), Health::Down);
        assert_eq!(t.record_success(UP_AFTER), None, "one good is not enough");
        assert_eq!(t.health(), Health::Down);
        assert_eq!(
            t.record_success(UP_AFTER),
            Some(HealthChange {
                from: Health::Down,
                to: Health::Up
            })
        );
    }

    #[test]
    fn flaps_keep_a_node_out_of_routing() {
        // fail, good, fail, good, ...: never up_after goods in a row, never
        // down_after failures in a row, so it stays suspect throughout.
        let mut t = up();
        let mut changes = Vec::new();
        for i in 0..20 {
            let c = if i % 2 == 0 {
                t.record_failure(DOWN_AFTER)
            } else {
                t.record_success(UP_AFTER)
            };
            changes.extend(c);
            assert_eq!(t.health(), Health::Suspect, "after outcome {i}");
        }
        assert_eq!(changes.len(), 1, "only the first failure changes health");
    }

    #[test]
    fn a_good_probe_resets_the_failure_count() {
        let mut t = up();
        t.record_failure(DOWN_AFTER);
        t.record_failure(DOWN_AFTER);
        t.record_success(UP_AFTER);
        assert_eq!(t.failures(), 0);
        t.record_failure(DOWN_AFTER);
        t.record_failure(DOWN_AFTER);
        assert_eq!(t.health(), Health::Suspect, "needs 3 in a row again");
    }

    #[test]
    fn thresholds_of_one_switch_at_once() {
        let mut t = up();
        assert_eq!(t.record_failure(1).map(|c| c.to), Some(Health::Down));
        assert_eq!(t.record_success(1).map(|c| c.to), Some(Health::Up));
        // Zero is treated as one rather than "never".
        assert_eq!(t.record_failure(0).map(|c| c.to), Some(Health::Down));
    }

    #[test]
    fn lag_excludes_at_once_and_readmits_after_up_after_rounds() {
        let mut l = LagTracker::default();
        assert_eq!(l.record(LagVerdict::Within, UP_AFTER), None);
        assert_eq!(l.record(LagVerdict::Over, UP_AFTER), Some(true));
        assert!(l.excluded());
        assert_eq!(l.record(LagVerdict::Over, UP_AFTER), None);
        assert_eq!(l.record(LagVerdict::Within, UP_AFTER), None);
        assert!(l.excluded(), "one good round is not enough");
        // A bad round restarts the count.
        assert_eq!(l.record(LagVerdict::Over, UP_AFTER), None);
        assert_eq!(l.record(LagVerdict::Within, UP_AFTER), None);
        // Unknown neither counts nor resets.
        assert_eq!(l.record(LagVerdict::Unknown, UP_AFTER), None);
        assert_eq!(l.record(LagVerdict::Within, UP_AFTER), Some(false));
        assert!(!l.excluded());
    }

    #[test]
    fn lag_reset_reports_a_lifted_exclusion_only() {
        let mut l = LagTracker::default();
        assert_eq!(l.reset(), None);
        l.record(LagVerdict::Over, UP_AFTER);
        assert_eq!(l.reset(), Some(false));
        assert!(!l.excluded());
    }
}
