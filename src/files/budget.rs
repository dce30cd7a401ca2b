//! The server's transfers in flight: at most `--max-transfers` files move
//! at once, and their block buffers share one memory budget. A transfer
//! alone gets full 1 MiB blocks (the fastest on loopback); a hundred at
//! once get smaller ones, so serving many clients stays within a fixed
//! amount of memory instead of growing by 2 MiB per client. Each transfer
//! asks again before every block, so the blocks shrink as others start
//! and grow back as they end.

use std::sync::Arc;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use super::transfer::CHUNK;

/// Bytes of block buffers all transfers share (each holds two blocks: one
/// on the network, one at the disk).
pub const BUDGET: usize = 16 << 20;
/// Smallest block, whatever the number of transfers: below this, per-block
/// costs (a thread hand-off, a system call each way) start to dominate.
pub const MIN_BLOCK: usize = 64 << 10;

/// Block size for one of `active` transfers sharing `budget` bytes: a power
/// of two between [`MIN_BLOCK`] and [`CHUNK`].
pub fn block_for(budget: usize, active: usize) -> usize {
    let share = budget / (2 * active.max(1));
    let pow = if share == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - share.leading_zeros())
    };
    pow.clamp(MIN_BLOCK, CHUNK)
}

/// The permits and the budget (see the module docs).
#[derive(Debug)]
pub struct Transfers {
    permits: Arc<Semaphore>,
    max: usize,
    budget: usize,
}

impl Transfers {
    pub fn new(max: usize, budget: usize) -> Self {
        let max = max.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            budget,
        }
    }

    /// Waits for a transfer slot; the transfer holds it while it moves.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, AcquireError> {
        self.permits.clone().acquire_owned().await
    }

    /// Transfers moving now.
    pub fn active(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Block size for a transfer moving now.
    pub fn block(&self) -> usize {
        block_for(self.budget, self.active())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_transfer_gets_full_blocks_and_many_share_the_budget() {
        assert_eq!(block_for(BUDGET, 1), CHUNK);
        assert_eq!(block_for(BUDGET, 8), CHUNK);
        assert_eq!(block_for(BUDGET, 9), 512 << 10);
        assert_eq!(block_for(BUDGET, 40), 128 << 10);
        assert_eq!(block_for(BUDGET, 100), 64 << 10);
        assert!(100 * 2 * block_for(BUDGET, 100) <= BUDGET);
        assert_eq!(block_for(BUDGET, 10_000), MIN_BLOCK);
        assert_eq!(block_for(0, 1), MIN_BLOCK);
        assert_eq!(block_for(BUDGET, 0), CHUNK);
    }

    #[tokio::test]
    async fn blocks_shrink_while_transfers_hold_slots_and_grow_back() {
        let t = Transfers::new(100, BUDGET);
        assert_eq!(t.block(), CHUNK);
        let held: Vec<_> = futures::future::join_all((0..40).map(|_| t.acquire())).await;
        assert_eq!(t.active(), 40);
        assert_eq!(t.block(), 128 << 10);
        drop(held);
        assert_eq!(t.active(), 0);
        assert_eq!(t.block(), CHUNK);
    }
}
