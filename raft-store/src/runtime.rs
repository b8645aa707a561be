//! [`SeededRuntime`]: openraft's tokio runtime with one difference: its random
//! numbers (the election timeout) come from a per-thread seed that a
//! simulation can set ([`seed_raft_rng`]), instead of the OS. Real nodes get a
//! random seed on first use, so they behave as with openraft's default.

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};
use rand08::rngs::SmallRng;
use rand08::SeedableRng;
use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

thread_local! {
    static SEED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Seeds this thread's Raft randomness: every later election timeout drawn on
/// this thread follows from `seed` (turmoil runs all hosts on one thread).
pub fn seed_raft_rng(seed: u64) {
    SEED.with(|s| s.set(Some(seed)));
}

/// The next seed: splitmix64 over the thread's state.
fn next_seed() -> u64 {
    SEED.with(|s| {
        let state = s.get().unwrap_or_else(rand::random);
        let next = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(Some(next));
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// tokio, with seedable randomness. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeededRuntime;

type Tokio = TokioRuntime;

impl AsyncRuntime for SeededRuntime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;
    type OneshotSender<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <Tokio as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SmallRng::seed_from_u64(next_seed())
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        Tokio::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand08::Rng;

    #[test]
    fn a_seed_decides_the_draws() {
        let draws = |seed| {
            seed_raft_rng(seed);
            (0..4)
                .map(|_| SeededRuntime::thread_rng().gen_range(150..300))
                .collect::<Vec<u64>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }
}
