//! The client socket with its two buffers: bytes read from the client and
//! bytes queued for it.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ClientError;
use crate::protocol::build;
use crate::protocol::frame;
use crate::tls::{ClientTlsInfo, Stream};

/// Initial buffer size; buffers grow for larger messages and shrink back
/// when the client goes idle.
pub const READ_CHUNK: usize = 8 * 1024;

/// Buffer reserve while logging in: startup and authentication messages
/// are small, and a pooler's clients are mostly idle after login, so their
/// first buffers should not be the 8 KiB a busy client reads with.
pub const LOGIN_CHUNK: usize = 512;

pub struct ClientIo {
    pub stream: Stream,
    /// Set once the client completed a TLS handshake (boxed: most
    /// sessions are plain TCP, and every session carries this field).
    pub tls: Option<Box<ClientTlsInfo>>,
    /// Bytes read from the client, not yet handled.
    pub rbuf: BytesMut,
    /// Bytes queued for the client.
    pub wbuf: BytesMut,
}

impl ClientIo {
    pub fn new(stream: TcpStream) -> ClientIo {
        ClientIo {
            stream: Stream::Plain(stream),
            tls: None,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
        }
    }

    /// Reads at least one more byte. Cancel-safe (tokio's read_buf is, and
    /// waiting for readiness consumes nothing).
    pub async fn read_more(&mut self) -> Result<usize, ClientError> {
        super::spare::reserve(&mut self.rbuf);
        self.read_some().await
    }

    /// `read_more` for the login phase: reserves [`LOGIN_CHUNK`] at a time.
    pub async fn read_login(&mut self) -> Result<usize, ClientError> {
        if self.rbuf.capacity() == self.rbuf.len() {
            self.rbuf.reserve(LOGIN_CHUNK);
        }
        self.read_some().await
    }

    async fn read_some(&mut self) -> Result<usize, ClientError> {
        match self.stream.read_buf(&mut self.rbuf).await? {
            0 => Err(ClientError::Closed),
            n => Ok(n),
        }
    }

    /// Reads at least one more byte for a session parked between requests,
    /// as a poll function: a parked session's task holds no read future
    /// (most of a pooler's clients are parked at any moment, and the task's
    /// size is paid by each of them). While a plain-TCP client has nothing
    /// buffered, its empty buffers, `extra` (the session's server-to-client
    /// buffer) too, go back to the thread's spares (see `spare`) and only
    /// readiness is waited for; a read buffer is taken once bytes arrived.
    /// rustls may hold decrypted bytes the socket no longer signals, so a
    /// TLS client is read from directly. Nothing is consumed while Pending.
    pub fn poll_idle_read(
        &mut self,
        extra: Option<&mut BytesMut>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, ClientError>> {
        let plain_empty = matches!(self.stream, Stream::Plain(_)) && self.rbuf.is_empty();
        if plain_empty {
            self.release_empty();
            if let Some(extra) = extra {
                super::spare::give(extra);
            }
            // poll_read_ready parks the waker in the socket's own
            // registration; `readable()` would add a waiter node.
            ready!(self.stream.tcp().poll_read_ready(cx))?;
        }
        super::spare::reserve(&mut self.rbuf);
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.rbuf) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(ClientError::Closed)),
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => {
                if plain_empty {
                    // Readiness was stale: wait without the buffer.
                    self.release_empty();
                }
                Poll::Pending
            }
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        if self.stream.wants_flush() {
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Reads one whole message (login phase only: allocates).
    pub async fn read_message(&mut self, max: usize) -> Result<(u8, BytesMut), ClientError> {
        loop {
            if let Some(h) = frame::header(&self.rbuf, max)? {
                if self.rbuf.len() >= h.total_len() {
                    let mut msg = self.rbuf.split_to(h.total_len());
                    msg.advance(frame::HEADER_LEN);
                    return Ok((h.tag, msg));
                }
                self.rbuf.reserve(h.total_len() - self.rbuf.len());
            }
            self.read_login().await?;
        }
    }

    /// Sends an ErrorResponse and flushes; used right before closing.
    pub async fn send_error(&mut self, e: &ClientError) {
        if let Some(w) = e.to_wire() {
            build::error_response(&mut self.wbuf, w.severity, &w.code, &w.message);
            let _ = self.flush().await;
        }
    }

    /// Gives back both buffers if they are empty (a client that just
    /// logged in and has nothing pipelined); see `spare`.
    pub fn release_empty(&mut self) {
        super::spare::give(&mut self.rbuf);
        super::spare::give(&mut self.wbuf);
    }

    /// Whether the client connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}
