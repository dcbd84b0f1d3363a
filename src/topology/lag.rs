//! Replica lag from one round's probes, and whether it is within limits.
//!
//! Definitions (both computed per replica, per round):
//!
//! * **Byte lag** = the primary's current LSN in the same round minus the
//!   replica's replay LSN, saturating at 0 (the probes of a round run
//!   concurrently, so a replica probed a moment after the primary can be
//!   ahead of the primary's sample). Unknown when the primary did not answer
//!   in that round.
//! * **Time lag** = how old the data a reader sees on the replica is,
//!   measured on the replica's own clock (no cross-host clock skew): 0 when
//!   the replica has nothing to apply — its replay LSN has reached its
//!   receive LSN or the primary's LSN from the same round — otherwise the
//!   replica's `now()` minus `pg_last_xact_replay_timestamp()` (the commit
//!   time of the last transaction it replayed). The "nothing to apply" rule
//!   is what keeps an idle primary from making replicas look hours behind:
//!   on an idle system the last replayed commit can be arbitrarily old
//!   without the replica missing anything. The price: WAL the replica has
//!   not even received (a stalled stream) does not show up as time lag, only
//!   as byte lag, so set `max_replica_lag_bytes` to bound that case too.

use std::time::Duration;

use super::health::LagVerdict;

/// What a replica's probe reported, as far as lag is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaPosition {
    pub replay_lsn: Option<u64>,
    pub receive_lsn: Option<u64>,
    /// The replica's `now()`, microseconds since the Unix epoch.
    pub now_us: Option<i64>,
    /// `pg_last_xact_replay_timestamp()`, microseconds since the Unix epoch.
    pub last_replay_us: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    pub bytes: Option<u64>,
    pub time: Option<Duration>,
}

pub fn replica_lag(primary_lsn: Option<u64>, r: &ReplicaPosition) -> Lag {
    let bytes = match (primary_lsn, r.replay_lsn) {
        (Some(p), Some(replay)) => Some(p.saturating_sub(replay)),
        _ => None,
    };
    let time = match r.replay_lsn {
        None => None,
        Some(replay) => {
            let nothing_to_apply = r.receive_lsn.is_some_and(|recv| replay >= recv)
                || primary_lsn.is_some_and(|p| replay >= p);
            if nothing_to_apply {
                Some(Duration::ZERO)
            } else {
                match (r.now_us, r.last_replay_us) {
                    // Negative (clock stepped back between the two reads) is
                    // treated as no lag rather than an error.
                    (Some(now), Some(last)) => Some(Duration::from_micros(
                        u64::try_from(now.saturating_sub(last)).unwrap_or(0),
                    )),
                    // Something to apply but nothing replayed since the
                    // replica started: no timestamp to measure from.
                    _ => None,
                }
            }
        }
    };
    Lag { bytes, time }
}

/// Over if any known value is over its limit (strictly greater); within only
/// when every configured limit could be checked.
pub fn verdict(lag: &Lag, max_lag: Duration, max_lag_bytes: Option<u64>) -> LagVerdict {
    let time_over = lag.time.is_some_and(|t| t > max_lag);
    let bytes_over = match (max_lag_bytes, lag.bytes) {
        (Some(limit), Some(b)) => b > limit,
        _ => false,
    };
    if time_over || bytes_over {
        return LagVerdict::Over;
    }
    let bytes_unknown = max_lag_bytes.is_some() && lag.bytes.is_none();
    if lag.time.is_none() || bytes_unknown {
        LagVerdict::Unknown
    } else {
        LagVerdict::Within
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    fn pos(replay: u64, receive: u64, now: i64, last: i64) -> ReplicaPosition {
        ReplicaPosition {
            replay_lsn: Some(replay),
            receive_lsn: Some(receive),
            now_us: Some(now),
            last_replay_us: Some(last),
        }
    }

    #[test]
    fn caught_up_replica_has_no_lag_even_if_last_commit_is_old() {
        // Idle primary: last replayed commit an hour ago, nothing to apply.
        let l = replica_lag(Some(1000), &pos(1000, 1000, 3600 * SEC, 0));
        assert_eq!(l.bytes, Some(0));
        assert_eq!(l.time, Some(Duration::ZERO));
    }

    #[test]
    fn bytes_against_the_rounds_primary_lsn_and_time_from_replay_timestamp() {
        // Replay paused: received up to 5000, replayed up to 1000.
        let l = replica_lag(Some(6000), &pos(1000, 5000, 10 * SEC, 7 * SEC));
        assert_eq!(l.bytes, Some(5000));
        assert_eq!(l.time, Some(Duration::from_secs(3)));
    }

    #[test]
    fn replica_ahead_of_the_primarys_sample_saturates_to_zero() {
        let l = replica_lag(Some(900), &pos(1000, 1000, 0, 0));
        assert_eq!(l.bytes, Some(0));
        assert_eq!(l.time, Some(Duration::ZERO));
    }

    #[test]
    fn received_everything_but_behind_primary_is_in_transit_not_time_lag() {
        let l = replica_lag(Some(5000), &pos(1000, 1000, 10 * SEC, 0));
        assert_eq!(l.bytes, Some(4000), "byte lag still shows it");
        assert_eq!(l.time, Some(Duration::ZERO));
    }

    #[test]
    fn unknown_parts_stay_unknown() {
        let l = replica_lag(None, &pos(1000, 5000, 10 * SEC, 9 * SEC));
        assert_eq!(l.bytes, None, "no primary in this round");
        assert_eq!(l.time, Some(Duration::from_secs(1)));

        let never_replayed = ReplicaPosition {
            replay_lsn: Some(1000),
            receive_lsn: Some(5000),
            now_us: Some(SEC),
            last_replay_us: None,
        };
        assert_eq!(replica_lag(Some(5000), &never_replayed).time, None);
        assert_eq!(
            replica_lag(Some(5000), &ReplicaPosition::default()),
            Lag::default()
        );
    }

    #[test]
    fn clock_stepping_back_is_no_lag() {
        let l = replica_lag(Some(6000), &pos(1000, 5000, 5 * SEC, 7 * SEC));
        assert_eq!(l.time, Some(Duration::ZERO));
    }

    #[test]
    fn verdicts() {
        let max = Duration::from_millis(300);
        let lag = |ms: u64, bytes: Option<u64>| Lag {
            bytes,
            time: Some(Duration::from_millis(ms)),
        };
        assert_eq!(verdict(&lag(300, Some(10)), max, None), LagVerdict::Within);
        assert_eq!(verdict(&lag(301, Some(10)), max, None), LagVerdict::Over);
        assert_eq!(verdict(&lag(0, None), max, None), LagVerdict::Within);
        assert_eq!(verdict(&lag(0, Some(11)), max, Some(10)), LagVerdict::Over);
        assert_eq!(
            verdict(&lag(0, Some(10)), max, Some(10)),
            LagVerdict::Within
        );
        assert_eq!(verdict(&lag(0, None), max, Some(10)), LagVerdict::Unknown);
        assert_eq!(verdict(&lag(500, None), max, Some(10)), LagVerdict::Over);
        let no_time = Lag {
            bytes: Some(11),
            time: None,
        };
        assert_eq!(verdict(&no_time, max, None), LagVerdict::Unknown);
        assert_eq!(verdict(&no_time, max, Some(10)), LagVerdict::Over);
    }
}
