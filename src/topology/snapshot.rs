//! The published view of a database's nodes, and the sans-IO assembler that
//! turns one round of probe outcomes (plus failures reported by sessions)
//! into the next view and the list of changes to log.

use std::time::{Duration, Instant};

use super::health::{Health, HealthTracker, LagTracker};
use super::lag::{replica_lag, verdict};
use super::probe::ProbeSample;
use super::HealthSettings;

/// What a node answered `pg_is_in_recovery()` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    Primary,
    Replica,
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeRole::Primary => "primary",
            NodeRole::Replica => "replica",
        })
    }
}

/// One immutable view of a database's nodes, published whole.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Rounds finished so far; 0 before the first.
    pub round: u64,
    /// When the round that produced this snapshot started probing: every
    /// value in it (the primary's LSN in particular) was read after this
    /// instant, so a commit acknowledged before it is covered by
    /// `primary_lsn` (read-your-writes relies on this).
    pub taken_at: Option<Instant>,
    /// Index into the hosts list of the adopted primary.
    pub primary: Option<usize>,
    /// The primary's current LSN in that round (`None` if it did not answer).
    pub primary_lsn: Option<u64>,
    /// The most recent round that read the primary's LSN: (round start,
    /// LSN). Kept while the primary is unreachable, so read-your-writes can
    /// still resolve against the last position known.
    pub primary_sample: Option<(Instant, u64)>,
    /// Same order as the hosts list.
    pub nodes: Vec<NodeView>,
}

/// One node as of the snapshot. Role, timeline and positions are those of
/// the node's last successful probe (`last_probe`); health and `last_error`
/// are current.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Last known role.
    pub role: Option<NodeRole>,
    pub health: Health,
    pub timeline: Option<u32>,
    /// Current LSN (primary) / replay LSN (replica).
    pub lsn: Option<u64>,
    /// Replicas only.
    pub receive_lsn: Option<u64>,
    /// Replicas only: see [`super::lag`] for the definitions.
    pub lag_bytes: Option<u64>,
    pub lag: Option<Duration>,
    /// Replicas only: over a lag limit and not yet back within limits for
    /// `up_after` rounds.
    pub lag_excluded: bool,
    /// When the node last answered a probe.
    pub last_probe: Option<Instant>,
    /// Why the last probe (or a session's server connection) failed; cleared
    /// by a good probe.
    pub last_error: Option<String>,
}

impl NodeView {
    fn unprobed() -> NodeView {
        NodeView {
            role: None,
            health: Health::Suspect,
            timeline: None,
            lsn: None,
            receive_lsn: None,
            lag_bytes: None,
            lag: None,
            lag_excluded: false,
            last_probe: None,
            last_error: None,
        }
    }
}

impl Snapshot {
    /// The view before any round: nothing known, every node suspect.
    pub fn initial(nodes: usize) -> Snapshot {
        Snapshot {
            round: 0,
            taken_at: None,
            primary: None,
            primary_lsn: None,
            primary_sample: None,
            nodes: vec![NodeView::unprobed(); nodes],
        }
    }

    /// Replicas that may take reads now: role Replica, health Up, not lag-excluded.
    pub fn eligible_replicas(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().enumerate().filter_map(|(i, n)| {
            (n.role == Some(NodeRole::Replica) && n.health == Health::Up && !n.lag_excluded)
                .then_some(i)
        })
    }
}

/// A change worth one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Role {
        node: usize,
        from: Option<NodeRole>,
        to: NodeRole,
    },
    Health {
        node: usize,
        from: Health,
        to: Health,
        /// Consecutive failures at the time of the change.
        failures: u32,
        reason: String,
    },
    Lag {
        node: usize,
        excluded: bool,
        lag: Option<Duration>,
        lag_bytes: Option<u64>,
        reason: &'static str,
    },
    /// The adopted primary changed.
    Primary {
        from: Option<usize>,
        to: Option<usize>,
        reason: &'static str,
    },
    /// More than one node answered as primary in the same round (logged when
    /// the set of claimants changes, not every round).
    ConflictingPrimaries {
        /// (node, timeline) of every claimant.
        claimants: Vec<(usize, Option<u32>)>,
        /// None when two claimants tie on the highest timeline: writes are
        /// held rather than guessed.
        chosen: Option<usize>,
    },
    /// A node answers as primary on a timeline older than one already
    /// adopted (an old primary restarted without being demoted): it never
    /// gets traffic. Logged when the set of fenced nodes changes.
    Fenced {
        node: usize,
        timeline: Option<u32>,
        adopted_timeline: u32,
    },
}

struct NodeState {
    view: NodeView,
    health: HealthTracker,
    lag: LagTracker,
    /// A session's report already counted since the last round.
    reported: bool,
}

/// The monitor's memory between rounds: hysteresis counters and the adopted
/// primary. Owned behind a mutex by the topology; never touched by readers.
pub struct Assembler {
    settings: HealthSettings,
    round: u64,
    taken_at: Option<Instant>,
    primary: Option<usize>,
    primary_lsn: Option<u64>,
    primary_sample: Option<(Instant, u64)>,
    nodes: Vec<NodeState>,
    /// Claimants of the last round that had more than one.
    conflict: Vec<usize>,
    /// The highest timeline of any primary ever adopted: claimants below it
    /// are fenced.
    adopted_timeline: Option<u32>,
    /// Nodes fenced in the last round (for logging changes only).
    fenced: Vec<usize>,
}

impl Assembler {
    pub fn new(nodes: usize, settings: HealthSettings) -> Assembler {
        Assembler {
            settings,
            round: 0,
            taken_at: None,
            primary: None,
            primary_lsn: None,
            primary_sample: None,
            nodes: (0..nodes)
                .map(|_| NodeState {
                    view: NodeView::unprobed(),
                    health: HealthTracker::default(),
                    lag: LagTracker::default(),
                    reported: false,
                })
                .collect(),
            conflict: Vec::new(),
            adopted_timeline: None,
            fenced: Vec::new(),
        }
    }

    pub fn primary(&self) -> Option<usize> {
        self.primary
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            round: self.round,
            taken_at: self.taken_at,
            primary: self.primary,
            primary_lsn: self.primary_lsn,
            primary_sample: self.primary_sample,
            nodes: self.nodes.iter().map(|n| n.view.clone()).collect(),
        }
    }

    /// Folds in one round: `outcomes[i]` is node i's probe (an error as
    /// text). Outcomes missing at the end (a shorter slice) count as failed.
    pub fn apply_round(
        &mut self,
        outcomes: &[Result<ProbeSample, String>],
        started_at: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        self.round += 1;
        self.taken_at = Some(started_at);
        let (up_after, down_after) = (self.settings.up_after, self.settings.down_after);

        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.reported = false;
            match outcomes.get(i) {
                Some(Ok(s)) => {
                    if let Some(c) = node.health.record_success(up_after) {
                        events.push(Event::Health {
                            node: i,
                            from: c.from,
                            to: c.to,
                            failures: 0,
                            reason: "probe answered".to_owned(),
                        });
                    }
                    let role = if s.in_recovery {
                        NodeRole::Replica
                    } else {
                        NodeRole::Primary
                    };
                    if node.view.role != Some(role) {
                        events.push(Event::Role {
                            node: i,
                            from: node.view.role,
                            to: role,
                        });
                    }
                    let v = &mut node.view;
                    v.role = Some(role);
                    v.timeline = s.timeline;
                    v.lsn = s.lsn;
                    v.receive_lsn = s.receive_lsn;
                    v.last_probe = Some(started_at);
                    v.last_error = None;
                }
                failed => {
                    let reason = match failed {
                        Some(Err(e)) => e.clone(),
                        _ => "no probe result".to_owned(),
                    };
                    if let Some(c) = node.health.record_failure(down_after) {
                        events.push(Event::Health {
                            node: i,
                            from: c.from,
                            to: c.to,
                            failures: node.health.failures(),
                            reason: reason.clone(),
                        });
                    }
                    node.view.last_error = Some(reason);
                }
            }
            node.view.health = node.health.health();
        }

        self.choose_primary(outcomes, &mut events);
        self.primary_lsn = self.primary.and_then(|p| match outcomes.get(p) {
            Some(Ok(s)) if !s.in_recovery => s.lsn,
            _ => None,
        });
        if let (Some(lsn), Some(at)) = (self.primary_lsn, self.taken_at) {
            self.primary_sample = Some((at, lsn));
        }
        self.update_lag(outcomes, &mut events);
        events
    }

    /// Counts a session's failed server connection to `node` like one failed
    /// probe. Many sessions failing on the same node between two rounds are
    /// one event, not many, so a burst of clients cannot push a node from up
    /// to down before the monitor has looked. Returns `None` when nothing was
    /// counted (unknown node, or already counted this round).
    pub fn apply_report(&mut self, node: usize) -> Option<Vec<Event>> {
        let down_after = self.settings.down_after;
        let n = self.nodes.get_mut(node)?;
        if n.reported {
            return None;
        }
        n.reported = true;
        let reason = "server connection failed in use".to_owned();
        let mut events = Vec::new();
        if let Some(c) = n.health.record_failure(down_after) {
            events.push(Event::Health {
                node,
                from: c.from,
                to: c.to,
                failures: n.health.failures(),
                reason: reason.clone(),
            });
        }
        n.view.health = n.health.health();
        n.view.last_error = Some(reason);
        if self.primary == Some(node) && n.view.health == Health::Down {
            events.push(Event::Primary {
                from: Some(node),
                to: None,
                reason: "primary is down",
            });
            self.primary = None;
            self.primary_lsn = None;
        }
        Some(events)
    }

    /// Primary choice for now (full fencing comes with failover handling):
    /// the competitors are this round's claimants (nodes answering
    /// `pg_is_in_recovery() = false`) plus the adopted primary while it is
    /// not down and was last seen as primary (one missed probe must not drop
    /// it). The highest timeline wins; on a tie the adopted primary stays,
    /// else the first listed. An unknown timeline ranks below any known one.
    fn choose_primary(
        &mut self,
        outcomes: &[Result<ProbeSample, String>],
        events: &mut Vec<Event>,
    ) {
        let all_claimants: Vec<(usize, Option<u32>)> = outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Ok(s) if !s.in_recovery && i < self.nodes.len() => Some((i, s.timeline)),
                _ => None,
            })
            .collect();
        // Fencing: a claimant on a timeline older than a primary already
        // adopted is an old primary that came back without being demoted.
        let floor = self.adopted_timeline;
        let fenced_now = |t: Option<u32>| match (floor, t) {
            (Some(f), Some(t)) => t < f,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut fenced = Vec::new();
        let mut claimants = Vec::new();
        for &(i, t) in &all_claimants {
            if fenced_now(t) {
                fenced.push(i);
                if !self.fenced.contains(&i) {
                    events.push(Event::Fenced {
                        node: i,
                        timeline: t,
                        adopted_timeline: floor.unwrap_or(0),
                    });
                }
            } else {
                claimants.push((i, t));
            }
        }
        self.fenced = fenced;
        let old = self.primary;
        let mut competitors = claimants.clone();
        if let Some(p) = old {
            let n = &self.nodes[p];
            let viable = n.view.role == Some(NodeRole::Primary) && n.view.health != Health::Down;
            if viable && !competitors.iter().any(|&(i, _)| i == p) {
                competitors.push((p, n.view.timeline));
            }
        }
        let best = competitors.iter().map(|&(_, t)| t).max();
        // Two nodes answering as primary on the same (highest) timeline in
        // the same round: split brain. Hold writes; never guess.
        let split =
            best.is_some_and(|best| claimants.iter().filter(|&&(_, t)| t == best).count() > 1);
        let chosen = best.filter(|_| !split).and_then(|best| {
            let tied = competitors.iter().filter(|&&(_, t)| t == best);
            old.filter(|&p| tied.clone().any(|&(i, _)| i == p))
                .or_else(|| tied.map(|&(i, _)| i).min())
        });

        if claimants.len() > 1 {
            let set: Vec<usize> = claimants.iter().map(|&(i, _)| i).collect();
            if set != self.conflict {
                events.push(Event::ConflictingPrimaries {
                    claimants: claimants.clone(),
                    chosen,
                });
                self.conflict = set;
            }
        } else {
            self.conflict.clear();
        }

        if chosen != old {
            let reason = match (old, chosen) {
                (None, Some(_)) => "node answers as primary",
                (Some(_), Some(_)) if claimants.len() > 1 => "higher timeline",
                (_, None) if split => "two nodes answer as primary on the same timeline",
                (Some(_), Some(_)) => "another node answers as primary",
                (Some(p), None) if self.nodes[p].view.health == Health::Down => "primary is down",
                (Some(_), None) => "primary is in recovery",
                (None, None) => "no change",
            };
            events.push(Event::Primary {
                from: old,
                to: chosen,
                reason,
            });
        }
        if let Some(c) = chosen {
            let t = competitors
                .iter()
                .find(|&&(i, _)| i == c)
                .and_then(|&(_, t)| t);
            if let Some(t) = t {
                self.adopted_timeline = Some(self.adopted_timeline.map_or(t, |f| f.max(t)));
            }
        }
        self.primary = chosen;
    }

    fn update_lag(&mut self, outcomes: &[Result<ProbeSample, String>], events: &mut Vec<Event>) {
        let s = &self.settings;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let v = &mut node.view;
            if v.role != Some(NodeRole::Replica) {
                v.lag = None;
                v.lag_bytes = None;
                if let Some(excluded) = node.lag.reset() {
                    events.push(Event::Lag {
                        node: i,
                        excluded,
                        lag: None,
                        lag_bytes: None,
                        reason: "no longer a replica",
                    });
                }
                v.lag_excluded = node.lag.excluded();
                continue;
            }
            // A replica that did not answer keeps its last lag figures and
            // exclusion state; its health already keeps it out of routing.
            let Some(Ok(sample)) = outcomes.get(i) else {
                continue;
            };
            let lag = replica_lag(self.primary_lsn, &sample.position());
            v.lag = lag.time;
            v.lag_bytes = lag.bytes;
            let verdict = verdict(&lag, s.max_lag, s.max_lag_bytes);
            if let Some(excluded) = node.lag.record(verdict, s.up_after) {
                events.push(Event::Lag {
                    node: i,
                    excluded,
                    lag: lag.time,
                    lag_bytes: lag.bytes,
                    reason: if excluded {
                        "over max_replica_lag or max_replica_lag_bytes"
                    } else {
                        "within lag limits"
                    },
                });
            }
            v.lag_excluded = node.lag.excluded();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HealthSettings {
        HealthSettings {
            interval: Duration::from_secs(1),
            suspect_interval: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            down_after: 3,
            up_after: 2,
            max_lag: Duration::from_millis(300),
            max_lag_bytes: None,
        }
    }

    const SEC: i64 = 1_000_000;

    fn primary(tli: u32, lsn: u64) -> Result<ProbeSample, String> {
        Ok(ProbeSample {
            in_recovery: false,
            timeline: Some(tli),
            lsn: Some(lsn),
            receive_lsn: None,
            now_us: Some(100 * SEC),
            last_replay_us: None,
        })
    }

    /// A replica that received `recv`, replayed `replay`, and last replayed
    /// a commit `behind` seconds ago.
    fn replica(replay: u64, recv: u64, behind: i64) -> Result<ProbeSample, String> {
        Ok(ProbeSample {
            in_recovery: true,
            timeline: Some(1),
            lsn: Some(replay),
            receive_lsn: Some(recv),
            now_us: Some(100 * SEC),
            last_replay_us: Some(100 * SEC - behind * SEC),
        })
    }

    fn down() -> Result<ProbeSample, String> {
        Err("connection refused".to_owned())
    }

    fn round(
        a: &mut Assembler,
        outcomes: &[Result<ProbeSample, String>],
    ) -> (Snapshot, Vec<Event>) {
        let events = a.apply_round(outcomes, Instant::now());
        (a.snapshot(), events)
    }

    fn eligible(s: &Snapshot) -> Vec<usize> {
        s.eligible_replicas().collect()
    }

    #[test]
    fn initial_snapshot_knows_nothing() {
        let s = Snapshot::initial(3);
        assert_eq!(s.round, 0);
        assert_eq!(s.primary, None);
        assert!(s
            .nodes
            .iter()
            .all(|n| n.health == Health::Suspect && n.role.is_none()));
        assert_eq!(eligible(&s), Vec::<usize>::new());
    }

    #[test]
    fn first_round_finds_roles_and_lag_against_the_same_rounds_primary() {
        let mut a = Assembler::new(3, settings());
        let (s, events) = round(
            &mut a,
            &[
                primary(1, 5000),
                replica(5000, 5000, 60),
                replica(4000, 4500, 2),
            ],
        );
        assert_eq!(s.round, 1);
        assert_eq!(s.primary, Some(0));
        assert_eq!(s.primary_lsn, Some(5000));
        assert_eq!(s.nodes[0].role, Some(NodeRole::Primary));
        assert_eq!(s.nodes[0].lag_bytes, None);
        assert_eq!(s.nodes[1].lag_bytes, Some(0));
        assert_eq!(
            s.nodes[1].lag,
            Some(Duration::ZERO),
            "caught up despite an old last commit"
        );
        assert_eq!(s.nodes[2].lag_bytes, Some(1000));
        assert_eq!(s.nodes[2].lag, Some(Duration::from_secs(2)));
        assert!(s.nodes[2].lag_excluded);
        assert_eq!(eligible(&s), vec![1]);
        assert!(s.nodes.iter().all(|n| n.health == Health::Up));
        assert!(events.contains(&Event::Primary {
            from: None,
            to: Some(0),
            reason: "node answers as primary"
        }));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Role { .. }))
                .count(),
            3
        );

        // Next round: the primary moved on; lag is against the new LSN, not the old.
        let (s, _) = round(
            &mut a,
            &[
                primary(1, 9000),
                replica(6000, 9000, 0),
                replica(9000, 9000, 0),
            ],
        );
        assert_eq!(s.primary_lsn, Some(9000));
        assert_eq!(s.nodes[1].lag_bytes, Some(3000));
        assert_eq!(s.nodes[2].lag_bytes, Some(0));
    }

    #[test]
    fn lag_exclusion_has_hysteresis() {
        let mut a = Assembler::new(2, settings());
        let ok = |a: &mut Assembler| round(a, &[primary(1, 100), replica(100, 100, 0)]);
        let lagging = |a: &mut Assembler| round(a, &[primary(1, 900), replica(100, 900, 5)]);
        assert_eq!(eligible(&ok(&mut a).0), vec![1]);
        let (s, events) = lagging(&mut a);
        assert!(s.nodes[1].lag_excluded, "one round over the limit excludes");
        assert!(matches!(
            events.as_slice(),
            [Event::Lag {
                node: 1,
                excluded: true,
                ..
            }]
        ));
        let (s, events) = ok(&mut a);
        assert!(s.nodes[1].lag_excluded, "one good round is not enough");
        assert!(events.is_empty());
        let (s, events) = ok(&mut a);
        assert!(!s.nodes[1].lag_excluded);
        assert!(matches!(
            events.as_slice(),
            [Event::Lag {
                node: 1,
                excluded: false,
                ..
            }]
        ));
        assert_eq!(eligible(&s), vec![1]);
    }

    #[test]
    fn byte_limit_applies_when_set() {
        let mut a = Assembler::new(
            2,
            HealthSettings {
                max_lag_bytes: Some(1000),
                ..settings()
            },
        );
        // Received everything it was sent (no time lag) but 2000 bytes behind.
        let (s, _) = round(&mut a, &[primary(1, 3000), replica(1000, 1000, 0)]);
        assert_eq!(s.nodes[1].lag, Some(Duration::ZERO));
        assert!(s.nodes[1].lag_excluded);
        // Primary did not answer: byte lag unknown, so no evidence to re-include.
        round(&mut a, &[down(), replica(3000, 3000, 0)]);
        let (s, _) = round(&mut a, &[down(), replica(3000, 3000, 0)]);
        assert_eq!(s.primary_lsn, None);
        assert_eq!(s.nodes[1].lag_bytes, None);
        assert!(s.nodes[1].lag_excluded);
    }

    #[test]
    fn a_replica_flapping_stays_out_and_comes_back_after_up_after_goods() {
        let mut a = Assembler::new(2, settings());
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        let (s, events) = round(&mut a, &[primary(1, 100), down()]);
        assert_eq!(s.nodes[1].health, Health::Suspect);
        assert_eq!(s.nodes[1].last_error.as_deref(), Some("connection refused"));
        assert_eq!(
            s.nodes[1].role,
            Some(NodeRole::Replica),
            "last known role kept"
        );
        assert!(matches!(
            events.as_slice(),
            [Event::Health {
                node: 1,
                from: Health::Up,
                to: Health::Suspect,
                failures: 1,
                ..
            }]
        ));
        assert_eq!(eligible(&s), Vec::<usize>::new());
        for _ in 0..5 {
            let (s, _) = round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
            assert_eq!(
                eligible(&s),
                Vec::<usize>::new(),
                "one good probe is not enough"
            );
            let (s, _) = round(&mut a, &[primary(1, 100), down()]);
            assert_eq!(
                s.nodes[1].health,
                Health::Suspect,
                "alternating never reaches down"
            );
        }
        round(&mut a, &[primary(1, 100), down()]);
        let (s, events) = round(&mut a, &[primary(1, 100), down()]);
        assert_eq!(s.nodes[1].health, Health::Down);
        assert!(matches!(
            events.as_slice(),
            [Event::Health {
                to: Health::Down,
                failures: 3,
                ..
            }]
        ));
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        let (s, _) = round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        assert_eq!(s.nodes[1].health, Health::Up);
        assert_eq!(eligible(&s), vec![1]);
    }

    #[test]
    fn primary_is_kept_through_a_missed_probe_and_dropped_when_down() {
        let mut a = Assembler::new(2, settings());
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        let (s, _) = round(&mut a, &[down(), replica(100, 100, 0)]);
        assert_eq!(s.primary, Some(0));
        assert_eq!(s.primary_lsn, None);
        assert_eq!(s.nodes[1].lag_bytes, None, "no primary LSN this round");
        round(&mut a, &[down(), replica(100, 100, 0)]);
        let (s, events) = round(&mut a, &[down(), replica(100, 100, 0)]);
        assert_eq!(s.primary, None);
        assert!(events.contains(&Event::Primary {
            from: Some(0),
            to: None,
            reason: "primary is down"
        }));
    }

    #[test]
    fn a_promoted_replica_with_a_higher_timeline_takes_over_from_a_silent_primary() {
        let mut a = Assembler::new(2, settings());
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        let (s, events) = round(&mut a, &[down(), primary(2, 200)]);
        assert_eq!(s.primary, Some(1));
        assert_eq!(s.primary_lsn, Some(200));
        assert!(events.contains(&Event::Role {
            node: 1,
            from: Some(NodeRole::Replica),
            to: NodeRole::Primary
        }));
    }

    #[test]
    fn a_claimant_on_the_same_timeline_waits_until_the_old_primary_is_down() {
        let mut a = Assembler::new(2, settings());
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        let (s, _) = round(&mut a, &[down(), primary(1, 200)]);
        assert_eq!(
            s.primary,
            Some(0),
            "tie keeps the adopted primary while only suspect"
        );
        round(&mut a, &[down(), primary(1, 200)]);
        let (s, _) = round(&mut a, &[down(), primary(1, 200)]);
        assert_eq!(s.primary, Some(1));
    }

    #[test]
    fn two_primaries_higher_timeline_wins() {
        let mut a = Assembler::new(3, settings());
        let (s, events) = round(
            &mut a,
            &[primary(1, 100), primary(2, 50), replica(50, 50, 0)],
        );
        assert_eq!(s.primary, Some(1));
        assert_eq!(s.primary_lsn, Some(50));
        assert_eq!(
            s.nodes[2].lag_bytes,
            Some(0),
            "lag against the chosen primary"
        );
        assert!(events.contains(&Event::ConflictingPrimaries {
            claimants: vec![(0, Some(1)), (1, Some(2))],
            chosen: Some(1)
        }));
        assert_eq!(eligible(&s), vec![2], "the losing claimant is no replica");
        // Same conflict again: not logged again.
        let (_, events) = round(
            &mut a,
            &[primary(1, 100), primary(2, 50), replica(50, 50, 0)],
        );
        assert!(!events
            .iter()
            .any(|e| matches!(e, Event::ConflictingPrimaries { .. })));
    }

    #[test]
    fn two_primaries_on_the_same_timeline_hold_writes() {
        let mut a = Assembler::new(3, settings());
        round(
            &mut a,
            &[replica(50, 50, 0), primary(1, 100), replica(50, 50, 0)],
        );
        let (s, events) = round(
            &mut a,
            &[primary(1, 100), primary(1, 100), replica(50, 50, 0)],
        );
        assert_eq!(s.primary, None, "split brain: no guessing");
        assert!(events.contains(&Event::ConflictingPrimaries {
            claimants: vec![(0, Some(1)), (1, Some(1))],
            chosen: None
        }));
        // Once only one claims again, it is used.
        let (s, _) = round(
            &mut a,
            &[replica(50, 50, 0), primary(1, 100), replica(50, 50, 0)],
        );
        assert_eq!(s.primary, Some(1));
        let mut a = Assembler::new(2, settings());
        let (s, _) = round(&mut a, &[primary(3, 100), primary(3, 100)]);
        assert_eq!(s.primary, None);
    }

    #[test]
    fn an_old_primary_back_on_an_older_timeline_is_fenced() {
        let mut a = Assembler::new(2, settings());
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        // Node 1 is promoted (timeline 2) while node 0 is gone.
        for _ in 0..3 {
            round(&mut a, &[down(), primary(2, 200)]);
        }
        assert_eq!(a.snapshot().primary, Some(1));
        // Node 0 restarts as a primary on timeline 1: never chosen, even
        // when the new primary is down too.
        let (s, events) = round(&mut a, &[primary(1, 150), primary(2, 210)]);
        assert_eq!(s.primary, Some(1));
        assert!(events.contains(&Event::Fenced {
            node: 0,
            timeline: Some(1),
            adopted_timeline: 2
        }));
        for _ in 0..3 {
            round(&mut a, &[primary(1, 150), down()]);
        }
        assert_eq!(
            a.snapshot().primary,
            None,
            "a fenced node never becomes primary"
        );
    }

    #[test]
    fn a_demoted_primary_is_dropped() {
        let mut a = Assembler::new(2, settings());
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        let (s, events) = round(&mut a, &[replica(100, 100, 0), replica(100, 100, 0)]);
        assert_eq!(s.primary, None);
        assert!(events.contains(&Event::Primary {
            from: Some(0),
            to: None,
            reason: "primary is in recovery"
        }));
    }

    #[test]
    fn reports_count_once_per_round() {
        let mut a = Assembler::new(2, settings());
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        let events = a.apply_report(1).unwrap();
        assert!(matches!(
            events.as_slice(),
            [Event::Health {
                node: 1,
                to: Health::Suspect,
                ..
            }]
        ));
        assert!(
            a.apply_report(1).is_none(),
            "a burst of reports is one failure"
        );
        assert!(a.apply_report(7).is_none());
        assert_eq!(a.snapshot().nodes[1].health, Health::Suspect);
        // Each round allows one more; with failing probes too it goes down.
        round(&mut a, &[primary(1, 100), down()]);
        a.apply_report(1).unwrap();
        assert_eq!(a.snapshot().nodes[1].health, Health::Down);
    }

    #[test]
    fn reports_against_the_primary_drop_it_only_when_down() {
        let mut a = Assembler::new(
            2,
            HealthSettings {
                down_after: 2,
                ..settings()
            },
        );
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        a.apply_report(0).unwrap();
        assert_eq!(a.snapshot().primary, Some(0));
        round(&mut a, &[primary(1, 100), replica(100, 100, 0)]);
        assert_eq!(
            a.snapshot().nodes[0].health,
            Health::Suspect,
            "needs up_after goods"
        );
        round(&mut a, &[down(), replica(100, 100, 0)]);
        let events = a.apply_report(0).unwrap();
        assert_eq!(a.snapshot().primary, None);
        assert!(events.contains(&Event::Primary {
            from: Some(0),
            to: None,
            reason: "primary is down"
        }));
    }

    #[test]
    fn a_replica_promoted_while_excluded_is_no_longer_excluded() {
        let mut a = Assembler::new(2, settings());
        round(&mut a, &[primary(1, 900), replica(100, 900, 5)]);
        assert!(a.snapshot().nodes[1].lag_excluded);
        let (s, events) = round(&mut a, &[down(), primary(2, 1000)]);
        assert!(!s.nodes[1].lag_excluded);
        assert!(events.contains(&Event::Lag {
            node: 1,
            excluded: false,
            lag: None,
            lag_bytes: None,
            reason: "no longer a replica"
        }));
    }
}
