//! `raftline.v1.Admin`: topics and the cluster view.

use super::status::{error_to_wire, status};
use crate::command::ElectionType;
use crate::convert;
use crate::node::{ControllerError, ControllerNode};
use raftline_proto::pb;
use raftline_proto::pb::admin_server::Admin;
use raftline_raft_store::RaftDisk;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Admin service of one node.
pub struct AdminService<D: RaftDisk> {
    node: Arc<ControllerNode<D>>,
}

impl<D: RaftDisk> AdminService<D> {
    /// The service over `node`.
    pub fn new(node: Arc<ControllerNode<D>>) -> Self {
        AdminService { node }
    }
}

#[tonic::async_trait]
impl<D: RaftDisk> Admin for AdminService<D> {
    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().name))]
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        let r = request.into_inner();
        let configs = r.configs.into_iter().collect();
        let topic = self
            .node
            .create_topic(&r.name, r.partitions, r.replication_factor, configs)
            .await;
        Ok(Response::new(convert::topic(
            &topic.map_err(|e| status(&e))?,
        )))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().name))]
    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        self.node
            .delete_topic(&request.into_inner().name)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().topic))]
    async fn create_partitions(
        &self,
        request: Request<pb::CreatePartitionsRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        let r = request.into_inner();
        let topic = self
            .node
            .create_partitions(&r.topic, r.total_count)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(convert::topic(&topic)))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().topic))]
    async fn alter_topic_configs(
        &self,
        request: Request<pb::AlterTopicConfigsRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        let r = request.into_inner();
        let topic = self
            .node
            .alter_topic_configs(&r.topic, r.set, r.delete.into_iter().collect())
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(convert::topic(&topic)))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().topic))]
    async fn elect_leaders(
        &self,
        request: Request<pb::ElectLeadersRequest>,
    ) -> Result<Response<pb::ElectLeadersResponse>, Status> {
        let r = request.into_inner();
        let election = match pb::ElectionType::try_from(r.election) {
            Ok(pb::ElectionType::Preferred) => ElectionType::Preferred,
            Ok(pb::ElectionType::Unclean) => ElectionType::Unclean,
            Err(_) => {
                let e = ControllerError::InvalidRequest(format!(
                    "election type {} is neither preferred (0) nor unclean (1)",
                    r.election
                ));
                return Err(status(&e));
            }
        };
        let topic = Some(r.topic.as_str()).filter(|t| !t.is_empty());
        let outcomes = self
            .node
            .elect_leaders(topic, &r.partitions, election)
            .await
            .map_err(|e| status(&e))?;
        let results = outcomes
            .into_iter()
            .map(|o| {
                let (leader, error) = match o.result {
                    Ok(leader) => (leader, None),
                    Err(e) => (None, Some(error_to_wire(&e))),
                };
                pb::ElectionResult {
                    topic: o.topic,
                    partition: o.partition,
                    leader: leader.map(|b| b.0),
                    error,
                }
            })
            .collect();
        Ok(Response::new(pb::ElectLeadersResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let view = self
            .node
            .topics(&request.into_inner().names)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::ListTopicsResponse {
            topics: view.topics.iter().map(convert::topic).collect(),
            metadata_version: view.version.0,
            stale: view.stale.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn describe_cluster(
        &self,
        _request: Request<pb::DescribeClusterRequest>,
    ) -> Result<Response<pb::DescribeClusterResponse>, Status> {
        Ok(Response::new(convert::cluster(
            &self.node.describe_cluster().await,
        )))
    }

    #[tracing::instrument(skip_all, fields(controller = request.get_ref().id))]
    async fn add_controller(
        &self,
        request: Request<pb::AddControllerRequest>,
    ) -> Result<Response<pb::DescribeClusterResponse>, Status> {
        let r = request.into_inner();
        let view = self
            .node
            .add_controller(r.id, r.peer_address)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(convert::cluster(&view)))
    }

    #[tracing::instrument(skip_all, fields(controller = request.get_ref().id))]
    async fn remove_controller(
        &self,
        request: Request<pb::RemoveControllerRequest>,
    ) -> Result<Response<pb::DescribeClusterResponse>, Status> {
        let view = self
            .node
            .remove_controller(request.into_inner().id)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(convert::cluster(&view)))
    }
}
