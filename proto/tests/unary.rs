//! `unary::call` against a real tonic server on 127.0.0.1: answers of one
//! and of many HTTP/2 frames decode to what was sent, and every kind of
//! failure comes back as the status tonic's own client would give.

// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use raftline_proto::pb;
use raftline_proto::pb::replication_server::{Replication, ReplicationServer};
use raftline_proto::unary;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};

const PATH: &str = "/raftline.v1.Replication/ReplicaFetch";

/// Answers each fetch with `max_bytes` bytes of records per partition asked
/// for, or refuses a fetch from replica 13.
struct Leader;

#[tonic::async_trait]
impl Replication for Leader {
    async fn replica_fetch(
        &self,
        request: Request<pb::ReplicaFetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let request = request.into_inner();
        if request.replica_id == 13 {
            return Err(Status::failed_precondition("replica 13 is fenced"));
        }
        let partitions = request
            .partitions
            .iter()
            .map(|p| pb::FetchResult {
                topic: p.topic.clone(),
                partition: p.partition,
                high_watermark: p.offset + 7,
                records: records(p.max_bytes as usize, p.partition).into(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(pb::FetchResponse { partitions }))
    }
}

fn records(len: usize, seed: u32) -> Vec<u8> {
    (0..len).map(|i| (i as u32 ^ seed) as u8).collect()
}

async fn leader() -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(ReplicationServer::new(Leader).max_encoding_message_size(usize::MAX))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

fn fetch(replica_id: u32, sizes: &[u32]) -> pb::ReplicaFetchRequest {
    pb::ReplicaFetchRequest {
        replica_id,
        partitions: sizes
            .iter()
            .enumerate()
            .map(|(i, &max_bytes)| pb::FetchPartition {
                topic: "orders".into(),
                partition: i as u32,
                offset: 100,
                max_bytes,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn answers_small_and_large_decode_to_what_the_server_sent() {
    let channel = leader().await;
    // Empty, small, and 3 MiB over many frames (the server's default
    // HTTP/2 frames are 16 KiB).
    for sizes in [&[][..], &[0, 10][..], &[1 << 20, 2 << 20, 5][..]] {
        let answer: pb::FetchResponse = unary::call(channel.clone(), PATH, &fetch(1, sizes))
            .await
            .unwrap();
        assert_eq!(answer.partitions.len(), sizes.len());
        for (i, (result, &size)) in answer.partitions.iter().zip(sizes).enumerate() {
            assert_eq!(result.partition, i as u32);
            assert_eq!(result.high_watermark, 107);
            assert_eq!(&result.records[..], &records(size as usize, i as u32)[..]);
        }
    }
}

#[tokio::test]
async fn failures_come_back_as_their_status() {
    let channel = leader().await;
    let refused = unary::call::<_, pb::FetchResponse>(channel.clone(), PATH, &fetch(13, &[1]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.message(), "replica 13 is fenced");

    let unknown = unary::call::<_, pb::FetchResponse>(
        channel,
        "/raftline.v1.Replication/Nothing",
        &fetch(1, &[1]),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::Unimplemented);

    // Nothing listens there any more.
    let gone = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let nowhere = Endpoint::from_shared(format!("http://{gone}"))
        .unwrap()
        .connect_lazy();
    let down = unary::call::<_, pb::FetchResponse>(nowhere, PATH, &fetch(1, &[1]))
        .await
        .unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down}");
}
