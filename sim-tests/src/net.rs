//! Raftline's gRPC over turmoil's simulated TCP: a [`Connector`] whose
//! channels dial through turmoil, and the accepted-connection stream a node's
//! servers take. Host names resolve through turmoil's DNS ("n1:9000").

use raftline_proto::transport::{
    peer_endpoint, probe_within, ConnectFuture, Connector, ProbeFuture,
};
use raftline_proto::wire::WireStream;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Channel, Uri};

/// Channels over turmoil's network. Make them inside a host: a channel's
/// worker task lives in that host's runtime.
#[derive(Clone, Debug)]
pub struct SimConnector {
    /// A connection attempt's deadline (simulated time).
    pub connect_timeout: Duration,
    /// Counts every connection the channels open, if given.
    pub dials: Option<Arc<AtomicU64>>,
}

impl Default for SimConnector {
    fn default() -> Self {
        SimConnector {
            connect_timeout: Duration::from_millis(500),
            dials: None,
        }
    }
}

impl SimConnector {
    /// A connector that adds each connection its channels open to `dials`.
    pub fn counting(dials: Arc<AtomicU64>) -> Self {
        SimConnector {
            dials: Some(dials),
            ..SimConnector::default()
        }
    }
}

impl Connector for SimConnector {
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let dials = self.dials.clone();
        let dial = tower::service_fn(move |uri: Uri| {
            let dials = dials.clone();
            async move {
                if let Some(dials) = dials {
                    dials.fetch_add(1, Ordering::Relaxed);
                }
                let authority =
                    uri.authority()
                        .map(|a| a.as_str().to_string())
                        .ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidInput, "no host in the uri")
                        })?;
                let stream = turmoil::net::TcpStream::connect(authority).await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        });
        // h2 forgets a stream it reset after this long in *real* time, and
        // answers frames that arrive later with RST_STREAM: how long the host
        // machine took would decide what goes on the simulated wire. Longer
        // than any simulation, it never expires; the count cap (50) still
        // bounds it, deterministically.
        Ok(peer_endpoint(addr, self.connect_timeout)?
            .http2_reset_stream_duration(Duration::from_secs(24 * 3600))
            .connect_with_connector_lazy(dial))
    }

    fn probe(&self, addr: &str) -> ProbeFuture {
        let (addr, within) = (addr.to_string(), self.connect_timeout);
        Box::pin(probe_within(within, turmoil::net::TcpStream::connect(addr)))
    }

    fn connect(&self, addr: &str) -> ConnectFuture {
        let (addr, within, dials) = (addr.to_string(), self.connect_timeout, self.dials.clone());
        Box::pin(async move {
            if let Some(dials) = dials {
                dials.fetch_add(1, Ordering::Relaxed);
            }
            let stream = tokio::time::timeout(within, turmoil::net::TcpStream::connect(addr))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            Ok(Box::new(stream) as WireStream)
        })
    }
}

/// An accepted simulated connection, as tonic's servers take it.
pub struct Accepted(turmoil::net::TcpStream);

impl Connected for Accepted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        TcpConnectInfo {
            local_addr: self.0.local_addr().ok(),
            remote_addr: self.0.peer_addr().ok(),
        }
    }
}

impl AsyncRead for Accepted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Accepted connections on `port` of this host, as a stream for
/// `serve_with_incoming`.
pub async fn incoming(
    port: u16,
) -> io::Result<impl futures_util::Stream<Item = io::Result<Accepted>> + Send + 'static> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(futures_util::stream::unfold(
        listener,
        |listener| async move {
            let accepted = listener.accept().await.map(|(s, _)| Accepted(s));
            Some((accepted, listener))
        },
    ))
}
