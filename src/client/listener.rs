//! Accept loop: one task per client, counted against `max_client_conn` by a
//! permit that moves into the task and is released when it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handshake::{handshake, start_tls, Handshake, Startup};
use super::io::ClientIo;
use super::login::{login, LoggedIn};
use super::ClientError;
use crate::state::State;

/// Accepts clients on `listener` until `shutdown`; `limit` holds
/// `max_client_conn` permits, shared by every listener of the process.
/// `closing`: once cancelled, only cancel requests are still served here
/// and new clients are refused with `57P01` (the peer listener, which stays
/// open while the process drains so that its clients can still be
/// cancelled through its peers).
pub async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
    closing: Option<CancellationToken>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let permit = limit.clone().try_acquire_owned().ok();
                tracker.spawn(client_task(
                    state.clone(),
                    stream,
                    peer,
                    permit,
                    tracker.clone(),
                    closing.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn client_task(
    state: Arc<State>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    tracker: TaskTracker,
    closing: Option<CancellationToken>,
) {
    // Login is boxed: its futures (TLS, SCRAM, auth_query) are large and
    // would otherwise stay part of every idle client's task for the life of
    // the session.
    let admitted = admit(&state, stream, peer, permit.is_none(), closing.as_ref());
    let Some(session) = Box::pin(admitted).await else {
        return;
    };
    match session {
        LoggedIn::Session(session) => {
            session.log_login();
            // The session continues in a task of its own, sized for it: this
            // task's state (the accepted socket, the peer, the login's
            // bookkeeping) is not carried through an idle client's life.
            tracker.spawn(session_task(session, permit));
            return;
        }
        LoggedIn::Admin(console) => {
            tracing::info!(%peer, "admin console client logged in");
            Box::pin(console.run()).await;
        }
    }
    drop(permit);
}

/// A logged-in client's session; its `max_client_conn` permit is released
/// when it ends. (An async block rather than an async fn: a fn's arguments
/// would be laid out twice in the task, as arguments and as locals.)
#[allow(clippy::manual_async_fn)] // see above: the layout is the point
fn session_task(
    session: Box<super::session::Session>,
    permit: Option<OwnedSemaphorePermit>,
) -> impl std::future::Future<Output = ()> {
    async move {
        session.run().await;
        drop(permit);
    }
}

/// The handshake, authentication and first server connection, within
/// `client_login_timeout`. None: the client was refused (and told) or left.
async fn admit(
    state: &Arc<State>,
    stream: TcpStream,
    peer: SocketAddr,
    over_limit: bool,
    closing: Option<&CancellationToken>,
) -> Option<LoggedIn> {
    let timeout = state.config().proxy.client_login_timeout;
    let negotiated = if timeout.is_zero() {
        negotiate(ClientIo::new(stream), state).await
    } else {
        tokio::time::timeout(timeout, negotiate(ClientIo::new(stream), state))
            .await
            .unwrap_or(Err((None, ClientError::LoginTimeout)))
    };
    let (io, startup) = match negotiated {
        // A new client of a listener that only serves cancel requests now.
        Ok((mut io, Some(_))) if closing.is_some_and(CancellationToken::is_cancelled) => {
            let e = ClientError::ShuttingDown;
            log_refused(peer, &e);
            io.send_error(&e).await;
            return None;
        }
        Ok((io, Some(s))) => (io, s),
        Ok((_, None)) => return None,
        Err((io, e)) => {
            log_refused(peer, &e);
            if let Some(mut io) = io {
                io.send_error(&e).await;
            }
            return None;
        }
    };
    match with_timeout(timeout, async {
        Ok(login(io, state.clone(), startup, over_limit).await)
    })
    .await
    {
        Ok(Ok(s)) => {
            state.login_limiter.success(peer.ip());
            Some(s)
        }
        Ok(Err((mut io, e))) => {
            log_refused(peer, &e);
            if matches!(e, ClientError::AuthFailed { .. }) {
                // Slows down password guessing from this address only.
                let delay = state.login_limiter.failure(peer.ip());
                if !delay.is_zero() {
                    tracing::info!(%peer, delay_ms = delay.as_millis() as u64, "delaying failed login");
                    tokio::time::sleep(delay).await;
                }
            }
            io.send_error(&e).await;
            None
        }
        Err(e) => {
            tracing::info!(%peer, error = %e, "client login timed out");
            None
        }
    }
}

/// The handshake up to a StartupMessage, switching to TLS on the way if the
/// client asks. `Ok(None)`: a cancel request, handled. On error the client is
/// returned when there is still a plaintext-or-TLS stream to answer on.
async fn negotiate(
    mut io: ClientIo,
    state: &Arc<State>,
) -> Result<(ClientIo, Option<Startup>), (Option<ClientIo>, ClientError)> {
    loop {
        match handshake(&mut io, state).await {
            Ok(Handshake::Startup(s)) => return Ok((io, Some(s))),
            Ok(Handshake::Cancelled) => return Ok((io, None)),
            Ok(Handshake::StartTls { direct }) => {
                io = start_tls(io, state, direct).await.map_err(|e| (None, e))?;
            }
            Err(e) => return Err((Some(io), e)),
        }
    }
}

fn log_refused(peer: SocketAddr, e: &ClientError) {
    match e {
        ClientError::Closed | ClientError::Io(_) => {
            tracing::debug!(%peer, error = %e, "client left during login")
        }
        _ => tracing::info!(%peer, error = %e, "client login refused"),
    }
}

async fn with_timeout<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    if timeout.is_zero() {
        return fut.await;
    }
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ClientError::LoginTimeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function returns, without calling it.
    fn future_size<A, B, F: std::future::Future>(_: impl FnOnce(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every logged-in client is a task for its whole life, mostly parked.
    /// tokio lays a task out as a 32-byte header, the future with 32 bytes
    /// of bookkeeping, and a 48-byte trailer, aligned to 128 bytes: past
    /// 144 bytes of future each client's task grows from 256 to 384 bytes.
    #[test]
    fn a_session_task_fits_in_256_bytes() {
        let size = future_size(session_task);
        assert!(size <= 144, "session task future is {size} bytes");
    }
}
