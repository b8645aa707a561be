//! The Kafka protocol front end: a listener beside gRPC that unmodified Kafka
//! clients (librdkafka, the Java client, kafka-python, kcat) use as a
//! bootstrap server. A thin adapter like `api`: Kafka's messages in (codecs
//! from the `kafka-protocol` crate), the same [`ReplicaManager`] and
//! [`Partition`](crate::replica::Partition) calls, Kafka's messages out.
//!
//! ```text
//! connection: [size i32][api key i16, version i16, correlation id i32, ...]
//!   size < 8 or > max_request_bytes ─> close, reason logged (before allocating)
//!   unknown key or version ─> ApiVersions: answered v0 with UNSUPPORTED_VERSION
//!                             and the supported ranges; others: close, logged
//!   known ─> decode header + body ─> handler ─> [size][response header][body]
//! ```
//!
//! Requests on one connection are handled one at a time, in order, as Kafka's
//! own broker does (clients pipeline, and expect answers in request order). A
//! Produce with acks=0 is answered with nothing.

mod admin;
mod errors;
mod groups;
mod handlers;
mod shapes;
mod versions;

pub use admin::{AdminFuture, ClusterAdmin, Elected};
pub use errors::{kafka_code, kafka_code_of};
pub use handlers::{topic_uuid, KAFKA_ENDPOINT};
pub use versions::{supported, SUPPORTED};

use crate::group::GroupCoordinator;
use crate::replica::ReplicaManager;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Kafka's `socket.request.max.bytes` default.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 << 20;
/// Kafka's `connections.max.idle.ms` default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How the listener behaves.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// The largest request frame read; a larger one closes the connection
    /// before anything is allocated for it.
    pub max_request_bytes: usize,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// What Metadata answers as the cluster id.
    pub cluster_id: String,
    /// Whether a Metadata request may create the unknown topics it names
    /// (Kafka's `auto.create.topics.enable`; off by default here).
    pub auto_create_topics: bool,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            cluster_id: "raftline".to_string(),
            auto_create_topics: false,
        }
    }
}

/// What a request gets back.
enum Reply {
    /// A framed response.
    Send(Bytes),
    /// Nothing (a Produce with acks=0).
    Nothing,
    /// The connection is closed, for this reason (logged).
    Close(String),
}

/// The Kafka front end of one broker.
pub struct KafkaFrontEnd {
    manager: Arc<ReplicaManager>,
    coordinator: Arc<GroupCoordinator>,
    admin: Arc<dyn ClusterAdmin>,
    config: KafkaConfig,
}

impl KafkaFrontEnd {
    /// A front end over `manager`, the broker's group `coordinator` and the
    /// controller quorum's topic operations (`admin`).
    pub fn new(
        manager: Arc<ReplicaManager>,
        coordinator: Arc<GroupCoordinator>,
        admin: Arc<dyn ClusterAdmin>,
        config: KafkaConfig,
    ) -> Arc<Self> {
        Arc::new(KafkaFrontEnd {
            manager,
            coordinator,
            admin,
            config,
        })
    }

    /// Serves every connection from `incoming` until `shutdown`.
    pub async fn serve<S, IO, E>(self: Arc<Self>, incoming: S, shutdown: CancellationToken)
    where
        S: Stream<Item = Result<IO, E>> + Send,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: std::fmt::Display,
    {
        let mut incoming = std::pin::pin!(incoming);
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = incoming.next() => accepted,
            };
            match accepted {
                None => return,
                Some(Ok(io)) => {
                    let this = self.clone();
                    let stop = shutdown.clone();
                    tokio::spawn(async move { this.connection(io, stop).await });
                }
                // A failed accept (out of file descriptors, say) does not
                // stop the listener.
                Some(Err(e)) => tracing::warn!(error = %e, "kafka listener: accept failed"),
            }
        }
    }

    async fn connection<IO>(self: Arc<Self>, io: IO, shutdown: CancellationToken)
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let (mut rd, mut wr) = tokio::io::split(io);
        loop {
            let size = tokio::select! {
                _ = shutdown.cancelled() => return,
                size = tokio::time::timeout(self.config.idle_timeout, rd.read_i32()) => size,
            };
            let size = match size {
                Err(_) => {
                    tracing::debug!(
                        "kafka connection idle for {:?}: closed",
                        self.config.idle_timeout
                    );
                    return;
                }
                // The client closed the connection (or it broke).
                Ok(Err(_)) => return,
                Ok(Ok(size)) => size,
            };
            let size = match usize::try_from(size) {
                Ok(n) if (8..=self.config.max_request_bytes).contains(&n) => n,
                _ => {
                    tracing::warn!(
                        size,
                        max = self.config.max_request_bytes,
                        "kafka connection closed: a request frame of {size} bytes is outside 8..={} \
                         (socket.request.max.bytes); is the client speaking another protocol, or TLS?",
                        self.config.max_request_bytes
                    );
                    return;
                }
            };
            let mut frame = BytesMut::zeroed(size);
            if rd.read_exact(&mut frame).await.is_err() {
                return;
            }
            match self.handle(frame.freeze()).await {
                Reply::Nothing => {}
                Reply::Send(bytes) => {
                    if wr.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Reply::Close(reason) => {
                    tracing::warn!("kafka connection closed: {reason}");
                    return;
                }
            }
        }
    }
}

/// A response frame: size, header (in the version the API prescribes), body.
fn frame<R: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Reply {
    // Sized up front: a Fetch answer carries up to megabytes of records, which
    // growing by doubling would copy again and again.
    let mut buf = BytesMut::with_capacity(body.compute_size(version).unwrap_or(0) + 64);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut buf, key.response_header_version(version))
        .and_then(|()| body.encode(&mut buf, version));
    if let Err(e) = encoded {
        return Reply::Close(format!(
            "could not encode the {key:?} v{version} response: {e:#}"
        ));
    }
    let Ok(len) = i32::try_from(buf.len() - 4) else {
        return Reply::Close(format!(
            "the {key:?} response ({} bytes) is too large for a frame",
            buf.len()
        ));
    };
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Reply::Send(buf.freeze())
}
