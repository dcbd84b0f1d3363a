//! Benchmark-only hook (feature `bench-internals`): lets `pgferry::bench`
//! fill a pool with idle connections that were not opened by
//! `server::connect`, so checkout and return can be measured without a
//! Postgres server. Nothing here changes how the pool behaves.

use super::Pool;
use crate::server::ServerConn;

impl Pool {
    /// Adds `conn` as an idle connection of this pool, as if the pool had
    /// opened it and it had come back clean. Only for pools without shared
    /// limits (no permit is taken for it).
    pub fn bench_adopt_idle(&self, conn: ServerConn) {
        let mut inner = self.lock();
        inner.open += 1;
        inner.idle.push(Box::new(conn));
    }
}
