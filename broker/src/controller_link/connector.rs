//! How the broker reaches controllers: a gRPC channel per address, built
//! lazily. The simulator supplies one over turmoil's network.
//! (raft-store has the same small trait for Raft peers; the broker may not
//! depend on raft-store, so it keeps its own.)

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Makes gRPC channels to `host:port` addresses.
pub trait Connector: Send + Sync + 'static {
    /// A channel that connects on first use and reconnects after failures.
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error>;
}

/// Plain TCP.
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

impl Connector for TcpConnector {
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        Ok(Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy())
    }
}
