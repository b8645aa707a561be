//! The receiving side of the Raft network: the `RaftPeer` gRPC service, handing
//! each RPC to the local Raft.

use crate::node::{read_index, write_error, WriteError};
use crate::standby::Heard;
use crate::types::{Request as Request_, TypeConfig};
use openraft::Raft;
use raftline_proto::pb::raft_peer_server::RaftPeer;
use raftline_proto::pb::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

/// Serves Raft RPCs from peers to the local `Raft`.
#[derive(Clone)]
pub struct RaftPeerService {
    raft: Raft<TypeConfig>,
    heard: Heard,
}

impl RaftPeerService {
    /// The service for `raft`; every `AppendEntries` and snapshot from a
    /// leader is marked in `heard`.
    pub fn new(raft: Raft<TypeConfig>, heard: Heard) -> Self {
        RaftPeerService { raft, heard }
    }
}

fn decode<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<T, Status> {
    serde_json::from_slice(&request.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    let data = serde_json::to_vec(result)
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))?;
    Ok(Response::new(RaftPayload { data }))
}

#[tonic::async_trait]
impl RaftPeer for RaftPeerService {
    #[tracing::instrument(skip_all)]
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.heard.mark();
        let result = self.raft.append_entries(decode(request)?).await;
        encode(&result)
    }

    #[tracing::instrument(skip_all)]
    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let result = self.raft.vote(decode(request)?).await;
        encode(&result)
    }

    #[tracing::instrument(skip_all)]
    async fn propose(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let command = Request_(request.into_inner().data);
        let result: Result<(u64, Vec<u8>), WriteError> = match self.raft.client_write(command).await
        {
            Ok(response) => Ok((response.log_id.index, response.data.0)),
            Err(e) => Err(write_error(e)),
        };
        encode(&result)
    }

    #[tracing::instrument(skip_all)]
    async fn read_index(
        &self,
        _request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        encode(&read_index(&self.raft).await)
    }

    #[tracing::instrument(skip_all)]
    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.heard.mark();
        let result = self.raft.install_snapshot(decode(request)?).await;
        encode(&result)
    }
}
