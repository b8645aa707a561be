//! openraft's `RaftNetwork` over gRPC: one client per peer, every call bounded by
//! openraft's soft TTL (simulated TCP does not retransmit; a call must not hang).

use crate::types::{NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use raftline_proto::pb::raft_peer_client::RaftPeerClient;
use raftline_proto::pb::RaftPayload;
use raftline_proto::transport::{ChannelCache, Connector};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

/// Pause between attempts to reach a peer that refuses connections.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(100);

/// Makes a [`PeerClient`] per peer (openraft's `RaftNetworkFactory`). The
/// clients share one connection per peer: openraft asks for a new client for
/// every vote and every read-index round (`ensure_linearizable`), which must
/// not each cost a TCP and HTTP/2 handshake.
#[derive(Clone)]
pub struct GrpcNetwork {
    channels: ChannelCache,
}

impl GrpcNetwork {
    /// A network whose connections `connector` makes.
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        GrpcNetwork {
            channels: ChannelCache::new(connector),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let mut peer = PeerClient {
            target,
            addr: node.addr.clone(),
            channels: self.channels.clone(),
            client: Err(String::new()),
        };
        peer.connect();
        peer
    }
}

/// The connection to one peer.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    channels: ChannelCache,
    /// The client, or why none could be made (a malformed address).
    client: Result<RaftPeerClient<Channel>, String>,
}

/// Which RPC to make.
#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl PeerClient {
    /// Takes the shared channel to the peer (a new one after [`forget`]).
    ///
    /// [`forget`]: ChannelCache::forget
    fn connect(&mut self) {
        self.client = self
            .channels
            .channel(&self.addr)
            .map(|c| {
                RaftPeerClient::new(c)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20)
            })
            .map_err(|e| e.to_string());
    }

    /// After a failed call: the connection may be dead (a peer cut off
    /// without a reset), so neither this client nor any other uses it again.
    fn reconnect(&mut self) {
        self.channels.forget(&self.addr);
        self.connect();
    }

    /// Sends `request`, waits at most the soft TTL, decodes the peer's
    /// `Result<Resp, RaftError<E>>`.
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &mut self.client {
            Ok(client) => client,
            Err(reason) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::other(reason.clone()),
                )))
            }
        };
        let data =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // The deadline is the client's alone (no grpc-timeout header): when it
        // passes, the dropped call resets the stream and the peer stops work
        // on it. A server-side timeout would answer with a response built
        // outside the node's services, dated by the machine's clock.
        let call = tonic::Request::new(RaftPayload { data });
        let sent = async {
            match rpc {
                Rpc::AppendEntries => client.append_entries(call).await,
                Rpc::Vote => client.vote(call).await,
                Rpc::InstallSnapshot => client.install_snapshot(call).await,
            }
        };
        let answer = tokio::time::timeout(option.soft_ttl(), sent).await;
        if !matches!(answer, Ok(Ok(_))) {
            self.reconnect();
        }
        let reply = match answer {
            Ok(Ok(reply)) => reply.into_inner(),
            // A peer that refuses connections is down: Unreachable makes openraft
            // back off (see `backoff`) before trying it again.
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            // A slow call (the first one also sets up the connection) is retried
            // at once: backing off here would stall a new leader's first commit.
            Ok(Err(status)) => return Err(RPCError::Network(NetworkError::new(&status))),
            Err(elapsed) => return Err(RPCError::Network(NetworkError::new(&elapsed))),
        };
        let result: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    /// How long to wait before retrying an unreachable peer: short, because a
    /// restarted peer should rejoin quickly and a refused connection is cheap.
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
