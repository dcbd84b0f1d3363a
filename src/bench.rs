//! Internals for the micro-benchmarks in `benches/` (feature
//! `bench-internals`, never enabled by the binary): thin re-exports of
//! crate-private hot-path code and a pool of idle connections that needs no
//! Postgres server. Not a stable API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

pub use crate::client::prepared::{
    bind_statement, deallocate_name, parse_name, rewrite_bind, rewrite_deallocate, share,
    statement_message, target, write_bind, ClientStatements, Prepared,
};

use crate::config::HostAddr;
use crate::metrics::Registry;
use crate::pool::Pool;
use crate::protocol::TxStatus;
use crate::server::{ConnectSpec, ServerConn, ServerStats};
use crate::tls::{Stream, TlsState};

/// A pool whose idle connections are connected 127.0.0.1 socket pairs that
/// never carry traffic. The peer ends live here: while they are open the
/// pool sees its connections as reusable (nothing readable, no EOF).
pub struct IdlePool {
    pub pool: Arc<Pool>,
    _peers: Vec<TcpStream>,
}

/// A pool of size `n` holding `n` idle connections. Must run inside a tokio
/// runtime (the sockets register with its reactor).
pub async fn idle_pool(n: usize) -> std::io::Result<IdlePool> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let spec = ConnectSpec {
        node: HostAddr {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
        user: "bench".to_owned(),
        database: "bench".to_owned(),
        password: None,
        passthrough: None,
        connect_timeout: Duration::from_secs(1),
        keepalive: false,
        tls: Arc::new(TlsState::disabled()),
    };
    let pool = Pool::new(spec, n, "bench", Arc::new(Registry::default()));
    let mut peers = Vec::with_capacity(n);
    for id in 0..n {
        let (ours, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let ours = ours?;
        peers.push(accepted?.0);
        pool.bench_adopt_idle(conn(ours, id as u64, addr)?);
    }
    Ok(IdlePool {
        pool,
        _peers: peers,
    })
}

fn conn(stream: TcpStream, id: u64, addr: SocketAddr) -> std::io::Result<ServerConn> {
    stream.set_nodelay(true)?;
    let now_us = crate::metrics::clock::now_us();
    Ok(ServerConn {
        stream: Stream::Plain(stream),
        id,
        node: HostAddr {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
        socket_addr: addr,
        backend_pid: 0,
        backend_secret: 0,
        params: Default::default(),
        tx_status: TxStatus::Idle,
        broken: false,
        created_us: now_us,
        last_used_us: now_us,
        stats: ServerStats::default(),
        epoch: 0,
        statements: Default::default(),
        entry: None,
    })
}
