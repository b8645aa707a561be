//! A request stream served in lanes, one per key: requests with the same key
//! are staged one after another in the order they came; lanes do not wait
//! for each other; every staged request's completion runs concurrently with
//! everything else, and its answer goes out when it ends.
//!
//! ```text
//! inbound ─ key(r) ─┬─> lane A: stage a1, then a2, ...   ─┐
//!                   ├─> lane B: stage b1, then b2, ...   ─┼─> completions ─> answers
//!                   └─> lane C ...                       ─┘   (as each ends)
//! ```
//!
//! `Broker.ProduceStream` keys requests by partition: a partition's batches
//! land in the order sent (staging appends them), and a partition whose log
//! is slow to append (a compaction pass on its writer, a slow disk) holds up
//! only its own lane, not every partition on the stream. Each lane holds at
//! most `depth` requests not yet staged; a full lane stops the reading of
//! the stream until it has room (the same backpressure a single lane had).

use futures_util::stream::{FuturesUnordered, Stream, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use tokio::sync::mpsc;

/// What staging one request gave: an answer to send at once (an error, or
/// acks=0's immediate acknowledgement), and the rest of its work, whose
/// output is the answer to send when it ends (if any).
pub struct Staged<A, F> {
    /// Sent as soon as the request is staged.
    pub now: Option<A>,
    /// Run concurrently; its answer is sent when it ends.
    pub later: Option<F>,
}

/// Serves `inbound` until it ends and every staged request has completed:
/// `stage` runs for each request, in arrival order among requests of the
/// same `key`, at most one at a time per key, each lane independent of the
/// others; answers go to `answers` (dropped if its receiver has gone).
pub async fn serve_in_lanes<R, K, A, S, SF, F>(
    mut inbound: impl Stream<Item = R> + Unpin,
    key: impl Fn(&R) -> K,
    stage: S,
    answers: mpsc::Sender<A>,
    depth: usize,
) where
    K: Eq + Hash,
    S: Fn(R) -> SF,
    SF: Future<Output = Staged<A, F>>,
    F: Future<Output = Option<A>>,
{
    let mut lanes: HashMap<K, mpsc::Sender<R>> = HashMap::new();
    let mut running = FuturesUnordered::new();
    // A request whose lane was full, with that lane: nothing more is read
    // until it is placed.
    let mut held: Option<(mpsc::Sender<R>, R)> = None;
    let mut reading = true;
    loop {
        let room = async {
            match held.as_ref() {
                Some((lane, _)) => lane.clone().reserve_owned().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            permit = room, if held.is_some() => {
                if let (Ok(permit), Some((_, request))) = (permit, held.take()) {
                    permit.send(request);
                }
            }
            next = inbound.next(), if reading && held.is_none() => match next {
                // The stream ended: closing the lanes lets each finish what
                // it holds.
                None => {
                    reading = false;
                    lanes.clear();
                }
                Some(request) => {
                    let lane = lanes.entry(key(&request)).or_insert_with(|| {
                        let (tx, rx) = mpsc::channel(depth.max(1));
                        running.push(run_lane(rx, &stage, answers.clone()));
                        tx
                    });
                    if let Err(mpsc::error::TrySendError::Full(request)) = lane.try_send(request) {
                        held = Some((lane.clone(), request));
                    }
                }
            },
            Some(()) = running.next(), if !running.is_empty() => {}
            else => return,
        }
    }
}

/// One key's lane: stages its requests in order, runs their completions
/// concurrently, ends when its queue is closed and drained and every
/// completion has answered.
async fn run_lane<R, A, S, SF, F>(mut queue: mpsc::Receiver<R>, stage: &S, answers: mpsc::Sender<A>)
where
    S: Fn(R) -> SF,
    SF: Future<Output = Staged<A, F>>,
    F: Future<Output = Option<A>>,
{
    let mut completing = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            next = queue.recv(), if open => match next {
                None => open = false,
                Some(request) => {
                    let staged = stage(request).await;
                    if let Some(answer) = staged.now {
                        let _ = answers.send(answer).await;
                    }
                    if let Some(rest) = staged.later {
                        completing.push(rest);
                    }
                }
            },
            Some(done) = completing.next(), if !completing.is_empty() => {
                if let Some(answer) = done {
                    let _ = answers.send(answer).await;
                }
            }
            else => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::sync::watch;

    /// A request: its key and its number.
    type Req = (char, u32);

    /// Runs `requests` through the lanes; staging a request of key 'A'
    /// waits until `release` is true; every staged request is logged in
    /// staging order and answered at once on completion.
    fn spawn_lanes(
        requests: Vec<Req>,
        depth: usize,
        release: watch::Receiver<bool>,
        staged_log: Arc<Mutex<Vec<Req>>>,
    ) -> (mpsc::Receiver<Req>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let stage = |r: Req| {
                let mut release = release.clone();
                let staged_log = staged_log.clone();
                async move {
                    if r.0 == 'A' {
                        let _ = release.wait_for(|open| *open).await;
                    }
                    staged_log.lock().unwrap().push(r);
                    Staged {
                        now: None,
                        later: Some(async move { Some(r) }),
                    }
                }
            };
            serve_in_lanes(
                futures_util::stream::iter(requests),
                |r: &Req| r.0,
                stage,
                tx,
                depth,
            )
            .await;
        });
        (rx, task)
    }

    /// The next answer, or `None` if there is none once everything else has
    /// stopped (the tests run on paused time: the timeout fires only when
    /// every task is idle, so it waits for no wall-clock time).
    async fn next<T>(rx: &mut mpsc::Receiver<T>) -> Option<T> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Every answer until none comes, sorted.
    async fn drain_sorted(rx: &mut mpsc::Receiver<Req>) -> Vec<Req> {
        let mut all = Vec::new();
        while let Some(r) = next(rx).await {
            all.push(r);
        }
        all.sort();
        all
    }

    /// The requests of `key` in the order they were staged.
    fn staged_of(log: &Mutex<Vec<Req>>, key: char) -> Vec<Req> {
        let log = log.lock().unwrap();
        log.iter().copied().filter(|r| r.0 == key).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_lane_does_not_hold_up_the_others_and_keeps_its_order() {
        let (release, held) = watch::channel(false);
        let log = Arc::new(Mutex::new(Vec::new()));
        let requests = vec![('A', 1), ('B', 1), ('A', 2), ('C', 1), ('B', 2), ('A', 3)];
        let (mut answers, task) = spawn_lanes(requests, 4, held, log.clone());
        // B and C are answered while A's first request cannot be staged.
        let mut early = Vec::new();
        for _ in 0..3 {
            early.push(next(&mut answers).await.expect("an answer while A is held"));
        }
        early.sort();
        assert_eq!(early, vec![('B', 1), ('B', 2), ('C', 1)]);
        assert!(log.lock().unwrap().iter().all(|r| r.0 != 'A'));
        release.send(true).unwrap();
        let late = drain_sorted(&mut answers).await;
        assert_eq!(late, vec![('A', 1), ('A', 2), ('A', 3)]);
        task.await.unwrap();
        // Within a lane, staging follows arrival.
        let a = staged_of(&log, 'A');
        assert_eq!(a, vec![('A', 1), ('A', 2), ('A', 3)]);
        let b = staged_of(&log, 'B');
        assert_eq!(b, vec![('B', 1), ('B', 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_lane_stops_the_reading_until_it_has_room_and_loses_nothing() {
        let (release, held) = watch::channel(false);
        let log = Arc::new(Mutex::new(Vec::new()));
        // A lane holds one request not yet staged: A2 fills it, A3 waits to
        // be placed, and nothing after it is read meanwhile.
        let requests = vec![('A', 1), ('A', 2), ('A', 3), ('B', 1)];
        let (mut answers, task) = spawn_lanes(requests, 1, held, log.clone());
        assert_eq!(
            next(&mut answers).await,
            None,
            "B was read past a full lane"
        );
        release.send(true).unwrap();
        let all = drain_sorted(&mut answers).await;
        task.await.unwrap();
        assert_eq!(all, vec![('A', 1), ('A', 2), ('A', 3), ('B', 1)]);
        let a = staged_of(&log, 'A');
        assert_eq!(a, vec![('A', 1), ('A', 2), ('A', 3)]);
    }

    #[tokio::test(start_paused = true)]
    async fn completions_answer_as_they_end_not_in_staging_order() {
        let (tx, mut rx) = mpsc::channel(8);
        let (finish_first, first_done) = watch::channel(false);
        let stage = move |n: u32| {
            let mut first_done = first_done.clone();
            async move {
                Staged {
                    now: (n == 0).then_some(100),
                    later: Some(async move {
                        if n == 1 {
                            let _ = first_done.wait_for(|d| *d).await;
                        }
                        Some(n)
                    }),
                }
            }
        };
        let serving = tokio::spawn(async move {
            serve_in_lanes(futures_util::stream::iter(0..3u32), |_| (), stage, tx, 4).await
        });
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next(&mut rx).await.expect("an answer while 1 is held"));
        }
        // The immediate answer of 0, then 0 and 2 complete; 1 still waits.
        got.sort();
        assert_eq!(got, vec![0, 2, 100]);
        finish_first.send(true).unwrap();
        assert_eq!(next(&mut rx).await, Some(1));
        assert_eq!(next(&mut rx).await, None);
        serving.await.unwrap();
    }
}
