//! null_forwarder: the floor under any TCP proxy on this machine.
//!
//! One thread, one epoll loop (mio), each client paired with an upstream
//! connection of its own, bytes forwarded as they arrive without being looked
//! at: no pooling, no parsing, no routing, no statistics. What such a proxy
//! costs per transaction is the kernel's work for receiving and sending every
//! message once, plus the smallest possible event loop. `benches/perf.sh`
//! (scenario `floor`) runs pgbench through it next to PgBouncer and pgferry, so
//! issue #8's CPU-per-transaction target can be read against what no proxy can
//! go below.
//!
//! Like pgferry it reads a socket once per readiness edge when the read comes
//! back short (the socket is drained then; new data raises a new edge), so an
//! exchange of one message each way costs one receive and one send per side.
//!
//! Usage: `cargo run --release --example null_forwarder -- LISTEN_ADDR UPSTREAM_ADDR`
//! (e.g. `127.0.0.1:6500 127.0.0.1:5432`). A benchmark tool, not part of pgferry.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};

const LISTENER: Token = Token(usize::MAX);
const CLIENT: usize = 0;
const UPSTREAM: usize = 1;

/// A client and its upstream connection; `pending[i]` holds bytes not yet
/// written to `socks[i]` (the socket's send buffer was full).
struct Pair {
    socks: [TcpStream; 2],
    pending: [Vec<u8>; 2],
}

fn token(idx: usize, side: usize) -> Token {
    Token(idx * 2 + side)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let parsed = (args.next(), args.next());
    let (Some(listen), Some(upstream)) = parsed else {
        eprintln!("usage: null_forwarder LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let addrs = (listen.parse::<SocketAddr>(), upstream.parse::<SocketAddr>());
    let (Ok(listen), Ok(upstream)) = addrs else {
        eprintln!("null_forwarder: addresses must be IP:PORT");
        std::process::exit(2);
    };
    if let Err(e) = run(listen, upstream) {
        eprintln!("null_forwarder: {e}");
        std::process::exit(1);
    }
}

fn run(listen: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut pairs: Vec<Option<Pair>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut scratch = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_all(&listener, upstream, poll.registry(), &mut pairs, &mut free);
                continue;
            }
            let (idx, side) = (ev.token().0 / 2, ev.token().0 % 2);
            let Some(pair) = pairs.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let registry = poll.registry();
            let mut alive = true;
            if ev.is_writable() {
                alive = flush(pair, side, idx, registry, &mut scratch);
            }
            if alive && (ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                alive = forward(pair, side, idx, registry, &mut scratch);
            }
            if !alive {
                if let Some(mut gone) = pairs[idx].take() {
                    for s in &mut gone.socks {
                        let _ = registry.deregister(s);
                    }
                }
                free.push(idx);
            }
        }
    }
}

/// Accepts every waiting client and connects each to the upstream.
fn accept_all(
    listener: &TcpListener,
    upstream: SocketAddr,
    registry: &Registry,
    pairs: &mut Vec<Option<Pair>>,
    free: &mut Vec<usize>,
) {
    loop {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("null_forwarder: accept: {e}");
                return;
            }
        };
        // A blocking connect: loopback answers at once, and this tool only
        // connects while a benchmark logs its clients in.
        let server = match std::net::TcpStream::connect(upstream) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("null_forwarder: connect {upstream}: {e}");
                continue;
            }
        };
        if server.set_nonblocking(true).is_err() {
            continue;
        }
        let mut pair = Pair {
            socks: [client, TcpStream::from_std(server)],
            pending: [Vec::new(), Vec::new()],
        };
        let idx = free.pop().unwrap_or(pairs.len());
        let mut ok = true;
        for side in [CLIENT, UPSTREAM] {
            ok &= pair.socks[side].set_nodelay(true).is_ok();
            ok &= registry
                .register(&mut pair.socks[side], token(idx, side), Interest::READABLE)
                .is_ok();
        }
        if !ok {
            for s in &mut pair.socks {
                let _ = registry.deregister(s);
            }
            free.push(idx);
            continue;
        }
        if idx == pairs.len() {
            pairs.push(Some(pair));
        } else {
            pairs[idx] = Some(pair);
        }
    }
}

/// Reads what `from` has and writes it to the other side. Stops reading while
/// the other side still has bytes pending (flush resumes it). False: the pair
/// is finished (a side closed or failed).
fn forward(
    pair: &mut Pair,
    from: usize,
    idx: usize,
    registry: &Registry,
    scratch: &mut [u8],
) -> bool {
    let to = 1 - from;
    loop {
        if !pair.pending[to].is_empty() {
            return true;
        }
        match pair.socks[from].read(scratch) {
            Ok(0) => return false,
            Ok(n) => {
                if !write_out(pair, to, idx, registry, &scratch[..n]) {
                    return false;
                }
                if n < scratch.len() {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes `data` to side `to`; what does not fit waits in its pending buffer
/// and the side is watched for writability.
fn write_out(pair: &mut Pair, to: usize, idx: usize, registry: &Registry, data: &[u8]) -> bool {
    let mut off = 0;
    while off < data.len() {
        match pair.socks[to].write(&data[off..]) {
            Ok(0) => return false,
            Ok(k) => off += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pair.pending[to].extend_from_slice(&data[off..]);
                return registry
                    .reregister(
                        &mut pair.socks[to],
                        token(idx, to),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_ok();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Writes side `side`'s pending bytes; once they are out, stops watching for
/// writability and resumes reading the other side, whose data may be waiting
/// without a new edge.
fn flush(
    pair: &mut Pair,
    side: usize,
    idx: usize,
    registry: &Registry,
    scratch: &mut [u8],
) -> bool {
    let mut off = 0;
    let total = pair.pending[side].len();
    while off < total {
        match pair.socks[side].write(&pair.pending[side][off..]) {
            Ok(0) => return false,
            Ok(k) => off += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pair.pending[side].drain(..off);
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    if total == 0 {
        return true;
    }
    pair.pending[side].clear();
    if registry
        .reregister(&mut pair.socks[side], token(idx, side), Interest::READABLE)
        .is_err()
    {
        return false;
    }
    forward(pair, 1 - side, idx, registry, scratch)
}
