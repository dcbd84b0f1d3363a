//! One line per failover, with its timeline: when the primary was lost, when
//! a primary was adopted again, how many clients were held meanwhile, the
//! longest hold, and how many clients got an error because of it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long after adoption the summary waits for held clients to report.
pub const SUMMARY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct FailoverLog {
    open: Option<Open>,
    /// Finished failovers, most recent last (bounded).
    pub history: Vec<Summary>,
    /// Finished failovers ever (the history forgets old ones).
    pub finished: u64,
}

#[derive(Debug)]
struct Open {
    detected_at: Instant,
    detected_wall: SystemTime,
    from: Option<usize>,
    adopted: Option<(Instant, usize)>,
    held: u64,
    longest_hold: Duration,
    errors: u64,
}

/// A finished failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Wall-clock times, milliseconds since the Unix epoch.
    pub detected_unix_ms: u128,
    pub adopted_unix_ms: u128,
    pub from: Option<usize>,
    pub to: usize,
    /// Loss detected → new primary adopted.
    pub gap: Duration,
    pub clients_held: u64,
    pub longest_hold: Duration,
    pub errors: u64,
}

const HISTORY: usize = 32;

impl FailoverLog {
    /// The adopted primary was lost (or reported failing). Opens a failover
    /// unless one is open.
    pub fn lost(&mut self, from: Option<usize>, at: Instant) {
        if self.open.is_none() {
            self.open = Some(Open {
                detected_at: at,
                detected_wall: SystemTime::now(),
                from,
                adopted: None,
                held: 0,
                longest_hold: Duration::ZERO,
                errors: 0,
            });
        }
    }

    /// A primary was adopted. Returns the gap when this ends a loss.
    pub fn adopted(&mut self, to: usize, at: Instant) -> Option<Duration> {
        let open = self.open.as_mut()?;
        if open.adopted.is_some() {
            return None;
        }
        open.adopted = Some((at, to));
        Some(at.saturating_duration_since(open.detected_at))
    }

    /// The primary was lost again right after adoption: still one failover.
    pub fn reopened(&mut self) {
        if let Some(open) = self.open.as_mut() {
            open.adopted = None;
        }
    }

    pub fn held(&mut self, waited: Duration) {
        if let Some(open) = self.open.as_mut() {
            open.held += 1;
            open.longest_hold = open.longest_hold.max(waited);
        }
    }

    pub fn error(&mut self) {
        if let Some(open) = self.open.as_mut() {
            open.errors += 1;
        }
    }

    /// Closes the failover once clients had time to report; returns its
    /// summary for logging.
    pub fn settle(&mut self, now: Instant) -> Option<Summary> {
        let open = self.open.as_ref()?;
        let (adopted_at, to) = open.adopted?;
        if now.saturating_duration_since(adopted_at) < SUMMARY_AFTER {
            return None;
        }
        let gap = adopted_at.saturating_duration_since(open.detected_at);
        let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let s = Summary {
            detected_unix_ms: unix(open.detected_wall),
            adopted_unix_ms: unix(open.detected_wall + gap),
            from: open.from,
            to,
            gap: adopted_at.saturating_duration_since(open.detected_at),
            clients_held: open.held,
            longest_hold: open.longest_hold,
            errors: open.errors,
        };
        self.open = None;
        if self.history.len() == HISTORY {
            self.history.remove(0);
        }
        self.history.push(s.clone());
        self.finished += 1;
        Some(s)
    }

    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The adopted primary is up again without ever having been replaced
    /// (a blip, or a restart faster than the down threshold). If nobody was
    /// held or failed meanwhile there is nothing to report and the failover
    /// is dropped; otherwise it counts as adopted now.
    pub fn recovered(&mut self, primary_up: Option<usize>, at: Instant) -> Option<Duration> {
        let open = self.open.as_ref()?;
        if open.adopted.is_some() {
            return None;
        }
        let p = primary_up?;
        if open.held == 0 && open.errors == 0 {
            self.open = None;
            return None;
        }
        self.adopted(p, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failover_from_loss_to_summary() {
        let t0 = Instant::now();
        let mut log = FailoverLog::default();
        assert_eq!(log.adopted(1, t0), None, "no failover open");
        log.lost(Some(0), t0);
        log.lost(Some(0), t0 + Duration::from_millis(50));
        log.held(Duration::from_millis(300));
        log.held(Duration::from_millis(900));
        log.error();
        assert_eq!(
            log.adopted(1, t0 + Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        log.held(Duration::from_millis(100));
        assert_eq!(
            log.settle(t0 + Duration::from_secs(3)),
            None,
            "waits for held clients"
        );
        let s = log.settle(t0 + Duration::from_secs(8)).unwrap();
        assert_eq!(s.clients_held, 3);
        assert_eq!(s.longest_hold, Duration::from_millis(900));
        assert_eq!(s.errors, 1);
        assert_eq!((s.from, s.to), (Some(0), 1));
        assert!(!log.is_open());
        assert_eq!(log.history.len(), 1);
    }
}
