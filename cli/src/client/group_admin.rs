//! Group administration on [`Client`] (as Kafka's AdminClient offers it):
//! list, describe, delete, read and reset committed offsets. Each call goes
//! to the group's coordinator, found again if it moved.

use super::group::offsets_from_wire;
use super::{rpc, Client, ClientError};
use raftline_broker::TopicPartition;
use raftline_proto::pb::{self, ErrorCode};
use std::collections::BTreeMap;
use tonic::transport::Channel;

type Groups = pb::groups_client::GroupsClient<Channel>;

impl Client {
    /// Runs `call` against `group`'s coordinator, finding it again (once per
    /// try, up to the request timeout) while it moves or loads; any other
    /// error is the answer. `call` returns the reply and the error inside it.
    async fn with_coordinator<T, F, Fut>(&self, group: &str, call: F) -> Result<T, ClientError>
    where
        F: Fn(Groups) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Option<pb::Error>), ClientError>>,
    {
        let give_up = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            let result = match self.find_coordinator(group).await {
                Ok(addr) => match call(self.groups(&addr)?).await {
                    Ok((reply, None)) => return Ok(reply),
                    Ok((_, Some(e))) => Err(ClientError::from_wire(e)),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match result {
                Err(e) if coordinator_moving(&e) && tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(self.config.retry_backoff).await;
                }
                Err(e) => return Err(e),
                Ok(reply) => return Ok(reply),
            }
        }
    }

    /// State, members, assignment and committed offsets of `group`.
    pub async fn describe_group(
        &self,
        group: &str,
    ) -> Result<pb::DescribeGroupResponse, ClientError> {
        let deadline = self.config.request_timeout;
        self.with_coordinator(group, |mut c| async move {
            let request = pb::DescribeGroupRequest {
                group: group.to_string(),
            };
            let mut reply = rpc("describe group", deadline, c.describe_group(request)).await?;
            let error = reply.error.take();
            Ok((reply, error))
        })
        .await
    }

    /// The committed offsets of `group`, by partition.
    pub async fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, u64>, ClientError> {
        let deadline = self.config.request_timeout;
        self.with_coordinator(group, |mut c| async move {
            let request = pb::FetchOffsetsRequest {
                group: group.to_string(),
                partitions: Vec::new(),
            };
            let mut reply = rpc("fetch offsets", deadline, c.fetch_offsets(request)).await?;
            let error = reply.error.take();
            Ok((offsets_from_wire(reply.offsets), error))
        })
        .await
    }

    /// Deletes `group` (it must have no members).
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let deadline = self.config.request_timeout;
        self.with_coordinator(group, |mut c| async move {
            let request = pb::DeleteGroupRequest {
                group: group.to_string(),
            };
            let reply = rpc("delete group", deadline, c.delete_group(request)).await?;
            Ok(((), reply.error))
        })
        .await
    }

    /// Moves `group`'s committed offsets on `topic` to `to` (the group must
    /// have no members), or with `dry_run` only says where they would go.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: pb::reset_offsets_request::To,
        dry_run: bool,
    ) -> Result<Vec<pb::OffsetReset>, ClientError> {
        let deadline = self.config.request_timeout;
        self.with_coordinator(group, |mut c| {
            let request = pb::ResetOffsetsRequest {
                group: group.to_string(),
                topic: topic.to_string(),
                to: Some(to),
                dry_run,
            };
            async move {
                let reply = rpc("reset offsets", deadline, c.reset_offsets(request)).await?;
                Ok((reply.partitions, reply.error))
            }
        })
        .await
    }

    /// Every group the cluster's brokers coordinate: (group, state, members).
    pub async fn list_groups(&self) -> Result<Vec<pb::GroupListing>, ClientError> {
        let metadata = self.refresh_metadata().await?;
        let mut all = Vec::new();
        for broker in metadata.brokers.values().filter(|b| !b.fenced) {
            let mut c = self.groups(&broker.address)?;
            match rpc(
                "list groups",
                self.config.request_timeout,
                c.list_groups(pb::ListGroupsRequest {}),
            )
            .await
            {
                Ok(reply) => all.extend(reply.groups),
                Err(e) if e.retriable() => {
                    tracing::warn!(broker = broker.id, error = %e, "a broker did not list its groups");
                }
                Err(e) => return Err(e),
            }
        }
        all.sort_by(|a, b| a.group.cmp(&b.group));
        all.dedup_by(|a, b| a.group == b.group);
        Ok(all)
    }
}

/// Whether `e` says to ask the group's coordinator again (it moved, is
/// loading, or could not be reached); other errors are answers.
fn coordinator_moving(e: &ClientError) -> bool {
    match e.code() {
        Some(code) => matches!(
            code,
            ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::RequestTimedOut
        ),
        None => e.retriable(),
    }
}

/// Whether `e` says the group has members (so it cannot be deleted or reset).
pub fn is_non_empty_group(e: &ClientError) -> bool {
    e.code() == Some(ErrorCode::NonEmptyGroup)
}
