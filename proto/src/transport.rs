//! How a node reaches other nodes' gRPC ports: a channel per `host:port`,
//! built lazily, behind a trait so the simulator can supply channels over its
//! own network. Shared by the Raft network (raft-store) and the broker's link
//! to the controllers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// What a TCP connection attempt to a node's listener found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Something accepted the connection: a process listens there (it may
    /// still be paused: the kernel accepts for a stopped process).
    Listening,
    /// The connection was actively refused: nothing listens there, so the
    /// process that did is gone (crashed, killed, or shutting down).
    Refused,
    /// No answer in time, or another error: nothing can be concluded (a
    /// network partition, a lost host).
    Unknown,
}

/// A boxed [`Probe`] in the making.
pub type ProbeFuture = Pin<Box<dyn Future<Output = Probe> + Send + 'static>>;

/// The [`Probe`] for a connection attempt given `within` to finish.
pub async fn probe_within<T>(
    within: Duration,
    attempt: impl Future<Output = std::io::Result<T>>,
) -> Probe {
    match tokio::time::timeout(within, attempt).await {
        Ok(Ok(_)) => Probe::Listening,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
        Ok(Err(_)) | Err(_) => Probe::Unknown,
    }
}

/// A boxed plain connection in the making.
pub type ConnectFuture =
    Pin<Box<dyn Future<Output = std::io::Result<crate::wire::WireStream>> + Send + 'static>>;

/// Makes gRPC channels to `host:port` addresses.
pub trait Connector: Send + Sync + 'static {
    /// A channel that connects on first use and reconnects after failures.
    /// Fails only if the address cannot be a URI.
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error>;

    /// One plain connection attempt to `addr`, closed at once: whether a
    /// process listens there. The controller uses it to tell a crashed
    /// broker from a slow or cut-off one before its session runs out.
    fn probe(&self, addr: &str) -> ProbeFuture;

    /// A plain connection to `addr` (Nagle off), for the replication wire
    /// ([`crate::wire`]); fails after the connect timeout.
    fn connect(&self, addr: &str) -> ConnectFuture;
}

/// A [`Connector`]'s channels, one per address, kept across calls: a
/// channel per call cost a TCP and HTTP/2 handshake each (a replica fetch
/// round, a heartbeat, a Raft read-index round). A caller whose call failed
/// [`forget`](Self::forget)s the address, so a connection that may be dead
/// (a peer cut off without a reset) is never handed out again.
#[derive(Clone)]
pub struct ChannelCache {
    connector: Arc<dyn Connector>,
    channels: Arc<Mutex<BTreeMap<String, Channel>>>,
}

impl std::fmt::Debug for ChannelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelCache").finish_non_exhaustive()
    }
}

impl ChannelCache {
    /// An empty cache over `connector`.
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        ChannelCache {
            connector,
            channels: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Channel>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The kept channel to `addr`, or a new one (kept from now on).
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.lock();
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = self.connector.channel(addr)?;
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Drops the kept channel to `addr`: the next call connects afresh.
    pub fn forget(&self, addr: &str) {
        self.lock().remove(addr);
    }
}

/// Plain TCP, for real nodes.
#[derive(Clone, Copy, Debug)]
pub struct TcpConnector {
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
}

impl Default for TcpConnector {
    fn default() -> Self {
        TcpConnector {
            connect_timeout: Duration::from_millis(500),
        }
    }
}

/// Between HTTP/2 pings on an idle or busy peer connection.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// A ping unanswered this long closes the connection.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest HTTP/2 frame either end of every gRPC connection accepts (peer
/// and client ports, the Rust client). Produce requests and fetch responses
/// are record batches of up to a few MiB; with HTTP/2's default of 16 KiB a
/// 512 KiB batch crosses as 32 DATA frames, each parsed and handed to the
/// receiving task on its own. With 1 MiB frames the brokers of a 3-node
/// acks=all run used a third less CPU per byte and carried a third more
/// (docs/BENCHMARKS.md, "HTTP/2 frames of 1 MiB"). The flow-control windows
/// keep their defaults: larger ones measured no different.
pub const H2_MAX_FRAME_BYTES: u32 = 1 << 20;

/// `endpoint` accepting frames of [`H2_MAX_FRAME_BYTES`].
pub fn sized_endpoint(endpoint: Endpoint) -> Endpoint {
    endpoint.max_frame_size(H2_MAX_FRAME_BYTES)
}

/// `server` accepting frames of [`H2_MAX_FRAME_BYTES`].
pub fn sized_server<L>(server: tonic::transport::Server<L>) -> tonic::transport::Server<L> {
    server.max_frame_size(H2_MAX_FRAME_BYTES)
}

/// The endpoint settings every peer channel shares: a connect deadline, and
/// HTTP/2 keepalive so a peer cut off without a FIN or RST (a network
/// partition, a paused process) ends long-lived calls such as the metadata
/// stream within seconds instead of never.
pub fn peer_endpoint(
    addr: &str,
    connect_timeout: Duration,
) -> Result<Endpoint, tonic::transport::Error> {
    Ok(
        sized_endpoint(Endpoint::from_shared(format!("http://{addr}"))?)
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true),
    )
}

impl Connector for TcpConnector {
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        Ok(peer_endpoint(addr, self.connect_timeout)?
            .tcp_nodelay(true)
            .connect_lazy())
    }

    fn probe(&self, addr: &str) -> ProbeFuture {
        let (addr, within) = (addr.to_string(), self.connect_timeout);
        Box::pin(probe_within(within, tokio::net::TcpStream::connect(addr)))
    }

    fn connect(&self, addr: &str) -> ConnectFuture {
        let (addr, within) = (addr.to_string(), self.connect_timeout);
        Box::pin(async move {
            let stream = tokio::time::timeout(within, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as crate::wire::WireStream)
        })
    }
}

/// Accepted connections of `listener` with Nagle's algorithm off, for
/// `serve_with_incoming`: a small answer (an ack, a heartbeat, a fetch
/// response) must not wait for the peer's delayed ACK (40 ms on Linux).
/// tonic's own `tcp_nodelay` applies only to listeners it binds itself.
pub fn accept_no_delay(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}
