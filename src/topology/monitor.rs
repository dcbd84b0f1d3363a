//! The monitor task of one database: probe rounds on a timer, sooner when
//! something is suspect or someone asks.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::probe::{NodeProbe, ProbeSample};
use super::Topology;

pub(super) async fn run(topology: Arc<Topology>, shutdown: CancellationToken) {
    let settings = topology.settings.clone();
    // One persistent connection per host, owned here: no other task uses
    // them, so they need no lock, and dropping the task closes them.
    let mut probes: Vec<NodeProbe> = topology
        .hosts
        .iter()
        .map(|h| {
            let mut spec = topology.probe_spec.clone();
            spec.node = h.clone();
            NodeProbe::new(spec)
        })
        .collect();
    tracing::info!(
        hosts = probes.len(),
        interval_ms = super::millis(settings.interval),
        suspect_interval_ms = super::millis(settings.suspect_interval),
        timeout_ms = super::millis(settings.timeout),
        "health monitor started"
    );
    'rounds: loop {
        let started = tokio::time::Instant::now();
        // Every sample of this round is taken after this instant; that is
        // what read-your-writes relies on (see Snapshot::taken_at).
        let round_started = Instant::now();
        let outcomes = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break 'rounds,
            o = round(&mut probes, &topology) => o,
        };
        let any_suspect = topology.finish_round(&outcomes, round_started);
        let pause = if any_suspect {
            settings.suspect_interval
        } else {
            settings.interval
        };
        // Intervals run from the start of a round, so a slow round does not
        // stretch the period by its own length.
        let mut next = started + pause;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break 'rounds,
                _ = tokio::time::sleep_until(next) => break,
                // A wake (a session's report, a caller waiting for a primary)
                // switches to the suspect interval at once rather than
                // starting a round right now: however many callers wake us,
                // rounds stay at most one per suspect interval, so a missing
                // primary cannot turn waiting clients into a probe storm.
                _ = topology.wake.notified() => {
                    next = next.min(started + settings.suspect_interval);
                }
            }
        }
    }
    tracing::info!("health monitor stopped");
}

/// Probes every host concurrently; each probe is bounded by the timeout, so
/// a round is too. (They run on this task with `join_all`: the work is
/// waiting on sockets, which needs no threads of its own.) A host that
/// swallows packets holds its round for the whole timeout, delaying the
/// other hosts' results with it; that is the price of comparing every
/// replica against the primary's LSN from the same round.
async fn round(probes: &mut [NodeProbe], topology: &Topology) -> Vec<Result<ProbeSample, String>> {
    let timeout = topology.settings.timeout;
    let results = futures_util::future::join_all(probes.iter_mut().map(|p| p.probe(timeout))).await;
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.map_err(|e| {
                tracing::debug!(node = %topology.host(i), error = %e, "probe failed");
                e.to_string()
            })
        })
        .collect()
}
