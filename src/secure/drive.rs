//! Moves the passphrase handshake's bytes over the TLS stream: feeds the
//! pure state machines of `handshake`, reading exactly one frame at a time
//! (never a byte of the application protocol that follows) and writing what
//! they answer, all before one deadline.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use super::error::SecureError;
use super::handshake::{HandshakeError, Step, bytes_needed};

/// More handshake steps than this is a bug or an attack (the protocol has 3).
const MAX_STEPS: usize = 8;

/// Failures of the byte-moving part, turned into [`SecureError`] by the caller.
#[derive(Debug)]
pub(crate) enum DriveError {
    /// The state machine failed.
    Handshake(HandshakeError),
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The peer closed mid-handshake.
    Closed,
    /// The deadline passed.
    Timeout,
}

impl DriveError {
    pub(crate) fn into_error(
        self,
        who: &str,
        timeout: Duration,
        step: &'static str,
    ) -> SecureError {
        let who = who.to_string();
        match self {
            Self::Handshake(source) => SecureError::Handshake { who, source },
            Self::Io(source) => SecureError::Io { who, source },
            Self::Closed => SecureError::Closed { who, step },
            Self::Timeout => SecureError::Timeout {
                who,
                step,
                secs: timeout.as_secs(),
            },
        }
    }
}

/// Feeds the state machine until it is done, reading exactly one frame at
/// a time so no application byte is taken.
pub(crate) async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    deadline: Instant,
    mut machine: impl FnMut(&mut BytesMut) -> Step,
) -> Result<(), DriveError> {
    for _ in 0..MAX_STEPS {
        match machine(buf) {
            Step::NeedMore => fill_frame(stream, buf, deadline).await?,
            Step::Reply(bytes) => send(stream, &bytes, deadline).await?,
            Step::Done(bytes) => return send(stream, &bytes, deadline).await,
            Step::Fail(bytes, e) => {
                let _ = send_and_close(stream, &bytes, deadline).await;
                return Err(DriveError::Handshake(e));
            }
        }
    }
    Err(DriveError::Handshake(HandshakeError::Unexpected {
        got: "too many messages",
        want: "the end",
    }))
}

/// Reads until `buf` holds one whole frame (or an invalid header, which
/// the state machine reports), never more.
pub(crate) async fn fill_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<(), DriveError> {
    loop {
        let need = match bytes_needed(buf) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => n,
        };
        let start = buf.len();
        buf.resize(start + need, 0);
        let read = timeout_at(deadline, stream.read(&mut buf[start..])).await;
        let n = read
            .map_err(|_| DriveError::Timeout)?
            .map_err(DriveError::Io)?;
        buf.truncate(start + n);
        if n == 0 {
            return Err(DriveError::Closed);
        }
    }
}

/// Writes and flushes `bytes` (nothing when empty) before the deadline.
pub(crate) async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    deadline: Instant,
) -> Result<(), DriveError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    timeout_at(deadline, write)
        .await
        .map_err(|_| DriveError::Timeout)?
        .map_err(DriveError::Io)
}

/// Best effort: a last message, then TLS close_notify.
pub(crate) async fn send_and_close<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    deadline: Instant,
) -> Result<(), DriveError> {
    send(stream, bytes, deadline).await?;
    timeout_at(deadline, stream.shutdown())
        .await
        .map_err(|_| DriveError::Timeout)?
        .map_err(DriveError::Io)
}
