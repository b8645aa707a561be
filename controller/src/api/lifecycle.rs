//! `raftline.v1.BrokerLifecycle`: registration and heartbeats from brokers.

use super::status::status;
use crate::convert;
use crate::ids::{BrokerEpoch, BrokerId};
use crate::lifecycle::BrokerLifecycle;
use raftline_proto::pb;
use raftline_proto::pb::broker_lifecycle_server::BrokerLifecycle as BrokerLifecycleRpc;
use raftline_raft_store::RaftDisk;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The BrokerLifecycle service of one controller node.
pub struct BrokerLifecycleService<D: RaftDisk> {
    lifecycle: Arc<BrokerLifecycle<D>>,
}

impl<D: RaftDisk> BrokerLifecycleService<D> {
    /// The service over `lifecycle`.
    pub fn new(lifecycle: Arc<BrokerLifecycle<D>>) -> Self {
        BrokerLifecycleService { lifecycle }
    }
}

#[tonic::async_trait]
impl<D: RaftDisk> BrokerLifecycleRpc for BrokerLifecycleService<D> {
    #[tracing::instrument(skip_all, fields(broker = request.get_ref().broker_id))]
    async fn register_broker(
        &self,
        request: Request<pb::RegisterBrokerRequest>,
    ) -> Result<Response<pb::RegisterBrokerResponse>, Status> {
        let r = request.into_inner();
        let endpoints = r.endpoints.into_iter().collect();
        let damaged = convert::partition_refs(r.damaged).map_err(|e| status(&e.into()))?;
        let epoch = self
            .lifecycle
            .register(
                BrokerId(r.broker_id),
                r.incarnation,
                endpoints,
                r.rack,
                damaged,
            )
            .await;
        Ok(Response::new(pb::RegisterBrokerResponse {
            broker_epoch: epoch.map_err(|e| status(&e))?.0,
        }))
    }

    #[tracing::instrument(skip_all, fields(broker = request.get_ref().broker_id))]
    async fn broker_heartbeat(
        &self,
        request: Request<pb::BrokerHeartbeatRequest>,
    ) -> Result<Response<pb::BrokerHeartbeatResponse>, Status> {
        let r = request.into_inner();
        let (id, epoch) = (BrokerId(r.broker_id), BrokerEpoch(r.broker_epoch));
        let fenced = self
            .lifecycle
            .heartbeat(id, epoch, r.metadata_offset, r.shutting_down)
            .await;
        Ok(Response::new(pb::BrokerHeartbeatResponse {
            fenced: fenced.map_err(|e| status(&e))?,
            metadata_offset: self.lifecycle.metadata_offset(),
        }))
    }

    #[tracing::instrument(skip_all, fields(broker = request.get_ref().broker_id))]
    async fn allocate_producer_ids(
        &self,
        request: Request<pb::AllocateProducerIdsRequest>,
    ) -> Result<Response<pb::AllocateProducerIdsResponse>, Status> {
        let r = request.into_inner();
        let (first, count) = self
            .lifecycle
            .allocate_producer_ids(BrokerId(r.broker_id), BrokerEpoch(r.broker_epoch))
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::AllocateProducerIdsResponse {
            first,
            count,
        }))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().topic, partition = request.get_ref().partition))]
    async fn alter_partition(
        &self,
        request: Request<pb::AlterPartitionRequest>,
    ) -> Result<Response<pb::PartitionRecord>, Status> {
        let request =
            convert::alter_partition(request.into_inner()).map_err(|e| status(&e.into()))?;
        let changed = self
            .lifecycle
            .alter_partition(request)
            .await
            .map_err(|e| status(&e))?;
        convert::partition_record(&changed)
            .map(Response::new)
            .ok_or_else(|| Status::internal("the ISR change was not reported as a partition"))
    }
}
