//! The shared TCP accept loop: a permit before every `accept`, doubling
//! back-off on accept errors, one task per connection, and admission against
//! the total and per-address connection limits.
//!
//! A connection over a limit is still accepted (within a small headroom) and
//! handed to the server as [`Admission::Rejected`], so it can tell the client
//! *why* in the client's own protocol instead of leaving it hanging in the
//! backlog. Past the headroom the loop stops accepting until a slot frees.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections accepted beyond `max_clients` only to be told why they are
/// refused. Each costs one socket and one short-lived task.
pub const REJECT_HEADROOM: usize = 64;

/// Connection limits of a server.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// Most connections served at once.
    pub max_clients: usize,
    /// Most connections from one IP address; 0 means unlimited.
    pub max_per_ip: usize,
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ServerFull,
    TooManyFromAddress,
}

/// The accept loop's verdict on one connection.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; the slot is freed when dropped.
    Admitted(ConnSlot),
    /// Tell the client why and close; the slot is freed when dropped.
    Rejected(Refusal, ConnSlot),
}

/// Holds a connection's place in the limits until dropped.
#[derive(Debug)]
pub struct ConnSlot {
    /// The accept permit; released on drop.
    _permit: OwnedSemaphorePermit,
    /// The per-address table to decrement, if this connection counted there.
    per_ip: Option<(Arc<Mutex<Counters>>, IpAddr)>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some((counters, ip)) = self.per_ip.take() {
            let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
            c.release(ip);
        }
    }
}

/// Counts of admitted connections, in total and per address.
#[derive(Debug, Default)]
pub struct Counters {
    /// Admitted connections now open.
    total: usize,
    /// Admitted connections per address; entries removed at zero.
    per_ip: HashMap<IpAddr, usize>,
}

impl Counters {
    /// Decides on a new connection from `ip` and counts it if admitted.
    pub fn admit(&mut self, ip: IpAddr, limits: &AcceptLimits) -> Result<(), Refusal> {
        if self.total >= limits.max_clients {
            return Err(Refusal::ServerFull);
        }
        let n = self.per_ip.get(&ip).copied().unwrap_or(0);
        if limits.max_per_ip != 0 && n >= limits.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        self.total += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
        Ok(())
    }

    fn release(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Admitted connections now open.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// Accepts until `shutdown` is cancelled, spawning `handler` per connection
/// on `tracker`. Returns when no more connections will be accepted.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limits: AcceptLimits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handler: F,
) where
    F: Fn(TcpStream, SocketAddr, Admission) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(
        limits.max_clients.saturating_add(REJECT_HEADROOM),
    ));
    let counters = Arc::new(Mutex::new(Counters::default()));
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(5);
                x
            }
            Err(e) => {
                // EMFILE and friends: wait and retry rather than spin or die.
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let verdict = counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(peer.ip(), &limits);
        let admission = match verdict {
            Ok(()) => Admission::Admitted(ConnSlot {
                _permit: permit,
                per_ip: Some((counters.clone(), peer.ip())),
            }),
            Err(refusal) => Admission::Rejected(
                refusal,
                ConnSlot {
                    _permit: permit,
                    per_ip: None,
                },
            ),
        };
        tracker.spawn(handler(stream, peer, admission));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: AcceptLimits = AcceptLimits {
        max_clients: 3,
        max_per_ip: 2,
    };

    #[test]
    fn per_address_limit_applies_before_total() {
        let mut c = Counters::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(c.admit(a, &LIMITS), Ok(()));
        assert_eq!(c.admit(a, &LIMITS), Ok(()));
        assert_eq!(c.admit(a, &LIMITS), Err(Refusal::TooManyFromAddress));
        assert_eq!(c.admit(b, &LIMITS), Ok(()));
        assert_eq!(c.admit(b, &LIMITS), Err(Refusal::ServerFull));
        c.release(a);
        assert_eq!(c.admit(b, &LIMITS), Ok(()));
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn zero_per_address_means_unlimited() {
        let mut c = Counters::default();
        let a: IpAddr = "::1".parse().unwrap();
        let limits = AcceptLimits {
            max_clients: 5,
            max_per_ip: 0,
        };
        for _ in 0..5 {
            assert_eq!(c.admit(a, &limits), Ok(()));
        }
        assert_eq!(c.admit(a, &limits), Err(Refusal::ServerFull));
    }
}
