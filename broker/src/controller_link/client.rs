//! [`ControllerClient`]: calls to the controller leader's BrokerLifecycle
//! service, following NOT_CONTROLLER hints and trying the others in turn.

use super::Connector;
use prost::Message;
use raftline_proto::pb;
use raftline_proto::pb::broker_lifecycle_client::BrokerLifecycleClient;
use raftline_proto::transport::ChannelCache;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Status;

/// A cloneable client of the controller quorum.
#[derive(Clone)]
pub struct ControllerClient {
    controllers: Arc<BTreeMap<u64, String>>,
    rpc_timeout: Duration,
    /// The controller believed to lead, and the round-robin position.
    state: Arc<Mutex<(Option<u64>, usize)>>,
    /// A channel per controller, kept across calls (a heartbeat every 100 ms)
    /// and forgotten after a call on it fails.
    channels: ChannelCache,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient")
            .field("controllers", &self.controllers)
            .finish()
    }
}

impl ControllerClient {
    /// A client of `controllers` (node id -> peer address).
    pub fn new(
        controllers: BTreeMap<u64, String>,
        connector: Arc<dyn Connector>,
        rpc_timeout: Duration,
    ) -> Self {
        ControllerClient {
            controllers: Arc::new(controllers),
            rpc_timeout,
            state: Arc::new(Mutex::new((None, 0))),
            channels: ChannelCache::new(connector),
        }
    }

    /// The believed leader, else the next controller in turn.
    pub fn next_controller(&self) -> Option<(u64, String)> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(addr) = state.0.and_then(|id| self.controllers.get(&id)) {
            return state.0.map(|id| (id, addr.clone()));
        }
        let n = self.controllers.len();
        if n == 0 {
            return None;
        }
        state.1 = (state.1 + 1) % n;
        self.controllers
            .iter()
            .nth(state.1)
            .map(|(&id, addr)| (id, addr.clone()))
    }

    fn set_leader(&self, leader: Option<u64>) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.0 = leader;
    }

    /// The kept channel to `addr`, or a new one.
    pub fn channel(&self, addr: &str) -> Option<Channel> {
        self.channels.channel(addr).ok()
    }

    /// Drops the kept channel to `addr` (a call on it failed): the next call
    /// connects afresh.
    pub fn forget(&self, addr: &str) {
        self.channels.forget(addr);
    }

    /// The per-call deadline.
    pub fn rpc_timeout(&self) -> Duration {
        self.rpc_timeout
    }

    /// Calls the leader (following one hint per controller); the last error if
    /// none answered.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: Fn(BrokerLifecycleClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut last = Status::unavailable("no controller is configured");
        for _ in 0..=self.controllers.len() {
            let Some((id, addr)) = self.next_controller() else {
                break;
            };
            let Some(channel) = self.channel(&addr) else {
                self.set_leader(None);
                continue;
            };
            let answer =
                tokio::time::timeout(self.rpc_timeout, call(BrokerLifecycleClient::new(channel)))
                    .await;
            match answer {
                Ok(Ok(reply)) => {
                    self.set_leader(Some(id));
                    return Ok(reply.into_inner());
                }
                Ok(Err(status)) => {
                    let details = status.details();
                    let answer = (!details.is_empty())
                        .then(|| pb::Error::decode(details).ok())
                        .flatten();
                    // An answer in the controller's own words came over a
                    // working connection; anything else may be a dead one.
                    if answer.is_none() {
                        self.forget(&addr);
                    }
                    let hint = answer.and_then(|e| e.leader_hint);
                    self.set_leader(hint.filter(|h| *h != id));
                    last = status;
                }
                Err(_) => {
                    self.forget(&addr);
                    self.set_leader(None);
                    last = Status::deadline_exceeded(format!(
                        "controller {id} at {addr} did not answer in time"
                    ));
                }
            }
        }
        Err(last)
    }
}
