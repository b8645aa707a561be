//! Produce over `Broker.ProduceStream`: one ordered stream per broker, shared
//! by every partition lane of the client. The broker appends each request
//! before it reads the next, so batches sent one after another land in that
//! order, and answers each by correlation id when it is acknowledged: a lane
//! may keep several batches in flight.
//!
//! ```text
//! send: register id ─> queue the request on the broker's stream (opened on first use)
//! reader task: answer(id) ─> that request's waiter; stream ends ─> every waiter fails
//! ```

use super::{Acks, Client, ClientError};
use raftline_proto::pb::{self, broker_client::BrokerClient};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

type Waiter = oneshot::Sender<Result<pb::ProduceResponse, ClientError>>;

/// Requests sent on one broker's stream and not yet answered.
#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, Waiter>,
    next: u64,
    /// The stream ended: nothing more is answered here.
    ended: bool,
}

/// One broker's produce stream.
#[derive(Clone)]
pub(super) struct ProduceStream {
    requests: mpsc::UnboundedSender<pb::ProduceStreamRequest>,
    pending: Arc<Mutex<Pending>>,
}

fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProduceStream {
    /// Opens a stream to `addr` over `broker` (the call itself runs in a
    /// task).
    fn open(mut broker: BrokerClient<Channel>, addr: &str) -> ProduceStream {
        let (requests, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let stream = ProduceStream {
            requests,
            pending: pending.clone(),
        };
        let outbound =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        let addr = addr.to_string();
        tokio::spawn(async move {
            let why = match broker.produce_stream(outbound).await {
                Ok(answers) => {
                    let mut answers = answers.into_inner();
                    loop {
                        match answers.message().await {
                            Ok(Some(answer)) => {
                                let waiter = lock(&pending).waiters.remove(&answer.correlation_id);
                                if let Some(waiter) = waiter {
                                    let _ = waiter.send(answer.response.ok_or_else(|| {
                                        ClientError::Transport(
                                            "a produce stream answer without its response".into(),
                                        )
                                    }));
                                }
                            }
                            Ok(None) => break "the broker closed the produce stream".to_string(),
                            Err(status) => break format!("produce stream: {status}"),
                        }
                    }
                }
                Err(status) => format!("produce stream: {status}"),
            };
            let mut pending = lock(&pending);
            pending.ended = true;
            for (_, waiter) in pending.waiters.drain() {
                let _ = waiter.send(Err(ClientError::Transport(format!("{addr}: {why}"))));
            }
        });
        stream
    }

    /// Whether `other` is this very stream.
    fn is(&self, other: &ProduceStream) -> bool {
        Arc::ptr_eq(&self.pending, &other.pending)
    }

    /// Queues `request`; the receiver gets its answer, or a transport error
    /// when the stream ends first. `None` when this stream has ended.
    fn send(
        &self,
        request: pb::ProduceRequest,
    ) -> Option<oneshot::Receiver<Result<pb::ProduceResponse, ClientError>>> {
        let mut pending = lock(&self.pending);
        if pending.ended {
            return None;
        }
        let id = pending.next;
        pending.next += 1;
        let (waiter, answer) = oneshot::channel();
        pending.waiters.insert(id, waiter);
        // Under the lock: a stream that ends now fails this waiter too.
        if self
            .requests
            .send(pb::ProduceStreamRequest {
                correlation_id: id,
                request: Some(request),
            })
            .is_err()
        {
            pending.waiters.remove(&id);
            return None;
        }
        Some(answer)
    }
}

impl Client {
    /// Sends one batch to `topic`/`p`'s leader on that broker's produce
    /// stream and returns at once: the leader's address and a future of the
    /// base offset (`None` with acks=0) or the typed error. Batches sent
    /// this way one after another to one broker are appended in that order.
    /// No retries: a failure is for the caller to resend (in order).
    pub(super) fn produce_streamed(
        &self,
        topic: &str,
        p: u32,
        records: bytes::Bytes,
        acks: Acks,
    ) -> Result<
        (
            String,
            impl std::future::Future<Output = Result<Option<u64>, ClientError>> + Send + 'static,
        ),
        ClientError,
    > {
        let addr = self
            .leader(topic, p)
            .ok_or_else(|| self.no_leader(topic, p))?;
        let request = pb::ProduceRequest {
            topic: topic.to_string(),
            partition: p,
            acks: acks as i32,
            timeout_ms: u32::try_from(self.config.request_timeout.as_millis()).unwrap_or(u32::MAX),
            records,
        };
        let mut answer = None;
        for _ in 0..2 {
            let stream = self.stream_to(&addr)?;
            if let Some(a) = stream.send(request.clone()) {
                answer = Some(a);
                break;
            }
            // That stream ended: forget it (unless another replaced it
            // already) and open another.
            let mut state = self.state();
            if state.streams.get(&addr).is_some_and(|s| s.is(&stream)) {
                state.streams.remove(&addr);
            }
        }
        let answer = answer.ok_or_else(|| {
            ClientError::Transport(format!("{addr}: cannot open a produce stream"))
        })?;
        let deadline = self.config.request_timeout + self.config.connect_timeout;
        let future = async move {
            let response = tokio::time::timeout(deadline, answer)
                .await
                .map_err(|_| ClientError::Transport("produce: no answer in time".into()))?
                .map_err(|_| ClientError::Transport("produce stream dropped".into()))??;
            match response.error {
                Some(e) => Err(ClientError::from_wire(e)),
                None if acks == Acks::None => Ok(None),
                None => Ok(Some(response.base_offset)),
            }
        };
        Ok((addr, future))
    }

    /// The open produce stream to `addr`, or a new one: one per broker, so
    /// that everything a lane sends there is in one order.
    fn stream_to(&self, addr: &str) -> Result<ProduceStream, ClientError> {
        if let Some(stream) = self.state().streams.get(addr) {
            return Ok(stream.clone());
        }
        let broker = self.broker(addr)?;
        let mut state = self.state();
        // Checked again under the lock: two lanes must not open two.
        if let Some(stream) = state.streams.get(addr) {
            return Ok(stream.clone());
        }
        let stream = ProduceStream::open(broker, addr);
        state.streams.insert(addr.to_string(), stream.clone());
        Ok(stream)
    }
}
