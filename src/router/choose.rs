//! Picking a replica: among eligible ones, those that satisfy
//! read-your-writes, the one with the least outstanding work.

/// One eligible replica as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub node: usize,
    /// WAL position the replica had replayed at its last probe.
    pub replay_lsn: Option<u64>,
    /// Transactions currently running on it through pgferry.
    pub in_flight: usize,
}

/// The replica to use, or None when none qualifies. `min_lsn` is the
/// read-your-writes floor: a replica must have replayed at least that far.
pub fn pick(candidates: impl Iterator<Item = Candidate>, min_lsn: Option<u64>) -> Option<usize> {
    candidates
        .filter(|c| match min_lsn {
            None => true,
            Some(min) => c.replay_lsn.is_some_and(|l| l >= min),
        })
        .min_by_key(|c| (c.in_flight, c.node))
        .map(|c| c.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(node: usize, lsn: u64, in_flight: usize) -> Candidate {
        Candidate {
            node,
            replay_lsn: Some(lsn),
            in_flight,
        }
    }

    #[test]
    fn least_outstanding_work_wins() {
        assert_eq!(pick([c(1, 10, 3), c(2, 10, 1)].into_iter(), None), Some(2));
        assert_eq!(pick([c(1, 10, 0), c(2, 10, 0)].into_iter(), None), Some(1));
        assert_eq!(pick(std::iter::empty(), None), None);
    }

    #[test]
    fn read_your_writes_floor() {
        assert_eq!(
            pick([c(1, 10, 0), c(2, 20, 5)].into_iter(), Some(15)),
            Some(2)
        );
        assert_eq!(pick([c(1, 10, 0), c(2, 12, 5)].into_iter(), Some(15)), None);
        let unknown = Candidate {
            node: 3,
            replay_lsn: None,
            in_flight: 0,
        };
        assert_eq!(pick([unknown].into_iter(), Some(1)), None);
    }
}
