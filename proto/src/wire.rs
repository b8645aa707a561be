//! The replication wire: replica fetches as length-prefixed frames on a plain
//! connection to a node's peer port, beside its gRPC.
//!
//! gRPC costs the replicated bytes a copy on each side that the kernel does
//! not need: the leader's prost encode of every fetch answer into one
//! message buffer, and HTTP/2 framing, flow control and a task hand-off per
//! call. Here an answer's records go onto the socket in the buffers they
//! were read in (a partition's may be several: the leader's tail hands its
//! batches over as appended), gathered into vectored writes, and come off
//! it into one buffer of their exact length per partition.
//!
//! ```text
//! client -> server  PREFACE ("RLFETCH1"), once per connection, then per call:
//!                   u32 length | ReplicaFetchRequest (protobuf)
//! server -> client  0u8 | u32 length | FetchResponse, every `records` empty
//!                      | u32 records length per partition, in order
//!                      | each partition's records
//!                or 1u8 | u32 length | Error (protobuf: code, message)
//! ```
//!
//! Lengths are big-endian. One call at a time per connection; a connection
//! whose call failed or timed out is dropped, never reused. The peer port
//! tells the two protocols apart by the first bytes ([`demux`]): HTTP/2's
//! client preface starts `PRI * HT`, this one [`PREFACE`].

use crate::pb;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

/// The first bytes a replication connection sends.
pub const PREFACE: &[u8; 8] = b"RLFETCH1";

/// The largest request a server reads (a fetch naming many partitions).
pub const MAX_REQUEST_BYTES: usize = 8 << 20;
/// The largest answer header a client reads (the partitions' fields).
pub const MAX_HEADER_BYTES: usize = 16 << 20;

/// The most record bytes one answer may carry in all (a leader's answer is
/// bounded by the request's `max_bytes`, 50 MiB at most).
pub const MAX_ANSWER_RECORDS_BYTES: usize = 64 << 20;

/// How long an accepted connection may take to send its first bytes before
/// it is dropped (it holds a task until then).
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream the wire runs on: TCP for real nodes, turmoil's in the
/// simulator.
pub trait WireIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> WireIo for T {}

/// A connection to a peer's replication wire.
pub type WireStream = Box<dyn WireIo>;

/// Why a call on the wire failed. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed or closed mid-frame.
    #[error("replication connection: {0}")]
    Io(#[from] io::Error),
    /// A length larger than this side accepts.
    #[error("{what} of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Which frame.
        what: &'static str,
        /// Its announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame that does not decode.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which frame.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

async fn read_len<R: AsyncRead + Unpin>(
    io: &mut R,
    what: &'static str,
    max: usize,
) -> Result<usize, WireError> {
    checked_len(what, io.read_u32().await?, max)
}

fn checked_len(what: &'static str, len: u32, max: usize) -> Result<usize, WireError> {
    let len = len as usize;
    if len > max {
        return Err(WireError::TooLarge { what, len, max });
    }
    Ok(len)
}

/// Reads `len` bytes into a new buffer (never zeroed first), fewer if the
/// stream ends first.
async fn read_up_to<R: AsyncRead + Unpin>(io: &mut R, len: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        let mut limited = (&mut *io).take((len - buf.len()) as u64);
        if limited.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

/// Reads exactly `len` bytes into a new buffer (never zeroed first).
async fn read_exact_bytes<R: AsyncRead + Unpin>(io: &mut R, len: usize) -> io::Result<Bytes> {
    let buf = read_up_to(io, len).await?;
    if buf.len() < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

fn decode<M: Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, WireError> {
    M::decode(bytes).map_err(|e| WireError::Malformed {
        what,
        reason: e.to_string(),
    })
}

/// Sends one request (after the [`PREFACE`], once per connection).
pub async fn write_request<W: AsyncWrite + Unpin>(
    io: &mut W,
    request: &pb::ReplicaFetchRequest,
) -> Result<(), WireError> {
    let mut buf = Vec::with_capacity(4 + request.encoded_len());
    put_message(&mut buf, "request", request, MAX_REQUEST_BYTES)?;
    io.write_all(&buf).await?;
    io.flush().await?;
    Ok(())
}

/// Puts `message` on `buf` with its length before it.
fn put_message(
    buf: &mut Vec<u8>,
    what: &'static str,
    message: &impl Message,
    max: usize,
) -> Result<(), WireError> {
    buf.put_u32(frame_len(what, message.encoded_len(), max)?);
    message.encode(buf).map_err(|e| WireError::Malformed {
        what,
        reason: e.to_string(),
    })
}

fn frame_len(what: &'static str, len: usize, max: usize) -> Result<u32, WireError> {
    u32::try_from(len)
        .ok()
        .filter(|_| len <= max)
        .ok_or(WireError::TooLarge { what, len, max })
}

/// Reads the next request; `None` when the client closed the connection
/// between calls.
pub async fn read_request<R: AsyncRead + Unpin>(
    io: &mut R,
) -> Result<Option<pb::ReplicaFetchRequest>, WireError> {
    let first = read_up_to(io, 4).await?;
    let Ok(first) = <[u8; 4]>::try_from(first.as_ref()) else {
        return if first.is_empty() {
            Ok(None)
        } else {
            Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())
        };
    };
    let len = checked_len("request", u32::from_be_bytes(first), MAX_REQUEST_BYTES)?;
    let body = read_exact_bytes(io, len).await?;
    decode("request", &body).map(Some)
}

/// A fetch answer as the server sends it: the response, and each
/// partition's records (in the response's order) as the buffers they were
/// read into, so batches a leader holds apart are sent without being
/// joined first. A partition's `records` field in the response, if set,
/// goes before its chunks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// The response; its `records` fields are sent after the header.
    pub response: pb::FetchResponse,
    /// Per partition, in the response's order: more records, each chunk
    /// whole batches. Missing entries are empty.
    pub records: Vec<Vec<Bytes>>,
}

impl From<pb::FetchResponse> for Answer {
    fn from(response: pb::FetchResponse) -> Self {
        Answer {
            response,
            records: Vec::new(),
        }
    }
}

/// Sends one answer: a fetch response, its records each written as they
/// are (no copy into a message buffer), or an error.
pub async fn write_response<W: AsyncWrite + Unpin>(
    io: &mut W,
    answer: Result<Answer, pb::Error>,
) -> Result<(), WireError> {
    match answer {
        Ok(Answer {
            mut response,
            records: mut more,
        }) => {
            more.resize_with(response.partitions.len(), Vec::new);
            let records: Vec<Vec<Bytes>> = response
                .partitions
                .iter_mut()
                .zip(more)
                .map(|(p, more)| {
                    std::iter::once(std::mem::take(&mut p.records))
                        .chain(more)
                        .collect()
                })
                .collect();
            let mut head = Vec::with_capacity(5 + response.encoded_len() + 4 * records.len());
            head.put_u8(0);
            put_message(&mut head, "answer header", &response, MAX_HEADER_BYTES)?;
            for chunks in &records {
                let len = chunks.iter().map(Bytes::len).sum();
                head.put_u32(frame_len("records", len, u32::MAX as usize)?);
            }
            write_chunks(io, Bytes::from(head), records.into_iter().flatten()).await?;
        }
        Err(error) => {
            let mut buf = Vec::with_capacity(5 + error.encoded_len());
            buf.put_u8(1);
            put_message(&mut buf, "error", &error, MAX_HEADER_BYTES)?;
            io.write_all(&buf).await?;
        }
    }
    io.flush().await?;
    Ok(())
}

/// The most buffers one vectored write gathers (Linux refuses more than
/// 1,024).
const MAX_SLICES: usize = 64;

/// Writes `head` and then every chunk, gathering them into vectored writes
/// where the stream takes them.
async fn write_chunks<W: AsyncWrite + Unpin>(
    io: &mut W,
    head: Bytes,
    chunks: impl IntoIterator<Item = Bytes>,
) -> io::Result<()> {
    let mut pending: std::collections::VecDeque<Bytes> = std::iter::once(head)
        .chain(chunks)
        .filter(|c| !c.is_empty())
        .collect();
    while !pending.is_empty() {
        let slices: Vec<io::IoSlice<'_>> = pending
            .iter()
            .take(MAX_SLICES)
            .map(|c| io::IoSlice::new(c))
            .collect();
        let n = io.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 {
            let Some(front) = pending.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                pending.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }
    Ok(())
}

/// Reads one answer: the fetch response with its records (each in a buffer
/// of its own, read once from the socket), or the error the server sent.
pub async fn read_response<R: AsyncRead + Unpin>(
    io: &mut R,
) -> Result<Result<pb::FetchResponse, pb::Error>, WireError> {
    let kind = io.read_u8().await?;
    match kind {
        0 => {
            let len = read_len(io, "answer header", MAX_HEADER_BYTES).await?;
            let head = read_exact_bytes(io, len).await?;
            let mut response: pb::FetchResponse = decode("answer header", &head)?;
            let mut lens = Vec::with_capacity(response.partitions.len());
            let mut total = 0usize;
            for _ in 0..response.partitions.len() {
                let len = io.read_u32().await? as usize;
                total = total.saturating_add(len);
                checked_len(
                    "records",
                    u32::try_from(total).unwrap_or(u32::MAX),
                    MAX_ANSWER_RECORDS_BYTES,
                )?;
                lens.push(len);
            }
            for (partition, len) in response.partitions.iter_mut().zip(lens) {
                partition.records = read_exact_bytes(io, len).await?;
            }
            Ok(Ok(response))
        }
        1 => {
            let len = read_len(io, "error", MAX_HEADER_BYTES).await?;
            let body = read_exact_bytes(io, len).await?;
            Ok(Err(decode("error", &body)?))
        }
        other => Err(WireError::Malformed {
            what: "answer",
            reason: format!("unknown answer kind {other}"),
        }),
    }
}

/// One call on an open connection: request out, answer in.
pub async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    request: &pb::ReplicaFetchRequest,
) -> Result<Result<pb::FetchResponse, pb::Error>, WireError> {
    write_request(io, request).await?;
    read_response(io).await
}

/// A client's kept connection to one peer at a time, made by a
/// [`Connector`](crate::transport::Connector).
pub struct Connection {
    connector: std::sync::Arc<dyn crate::transport::Connector>,
    /// The peer address and the stream; absent while a call is under way,
    /// and after one that did not end with a whole answer.
    kept: Option<(String, WireStream)>,
}

impl Connection {
    /// No connection yet; the first call opens one.
    pub fn new(connector: std::sync::Arc<dyn crate::transport::Connector>) -> Self {
        Connection {
            connector,
            kept: None,
        }
    }

    /// One call to `addr` on the kept connection, opened first if there is
    /// none (or it went to another address). The stream is taken out for
    /// the call and kept again only after a whole answer: a call that
    /// fails, or is dropped (timed out, or its caller gave up), would leave
    /// its answer or part of it for the next call to read as its own. A
    /// kept connection that fails in transport is tried once more on a new
    /// one: the server drops connections idle for [`SERVER_IDLE_TIMEOUT`],
    /// and a fetch asked twice is answered alike.
    pub async fn call(
        &mut self,
        addr: &str,
        request: &pb::ReplicaFetchRequest,
    ) -> Result<Result<pb::FetchResponse, pb::Error>, WireError> {
        if let Some((to, mut stream)) = self.kept.take().filter(|(to, _)| to == addr) {
            match call(&mut stream, request).await {
                Ok(answer) => {
                    self.kept = Some((to, stream));
                    return Ok(answer);
                }
                Err(WireError::Io(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut stream = self.connector.connect(addr).await?;
        open(&mut stream).await?;
        let answer = call(&mut stream, request).await?;
        self.kept = Some((addr.to_string(), stream));
        Ok(answer)
    }
}

/// Opens the wire on a fresh connection: sends the [`PREFACE`].
pub async fn open<W: AsyncWrite + Unpin>(io: &mut W) -> io::Result<()> {
    io.write_all(PREFACE).await?;
    io.flush().await
}

/// How long a server waits for a client's next request, or for an answer to
/// go out, before it drops the connection: a follower fetches again as soon
/// as it has applied an answer, so only a client gone without a word (a
/// network partition, a host lost) stays silent this long, and its
/// connection would otherwise hold a task and a socket for ever.
pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

async fn within<T>(
    what: &'static str,
    step: impl Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    tokio::time::timeout(SERVER_IDLE_TIMEOUT, step)
        .await
        .map_err(|_| {
            WireError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what}: nothing for {SERVER_IDLE_TIMEOUT:?}"),
            ))
        })?
}

/// Serves calls on one accepted wire connection (its preface already read)
/// until the client closes it, a frame is bad, the client is silent (or
/// does not take an answer) for [`SERVER_IDLE_TIMEOUT`], or `stop`
/// resolves. `handle` answers each request.
pub async fn serve_connection<IO, H, F>(
    mut io: IO,
    handle: H,
    stop: impl Future<Output = ()>,
) -> Result<(), WireError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: Fn(pb::ReplicaFetchRequest) -> F,
    F: Future<Output = Result<Answer, pb::Error>>,
{
    let serve = async {
        while let Some(request) = within("waiting for a request", read_request(&mut io)).await? {
            let answer = handle(request).await;
            within("sending an answer", write_response(&mut io, answer)).await?;
        }
        Ok(())
    };
    tokio::select! {
        result = serve => result,
        () = stop => Ok(()),
    }
}

/// An accepted connection whose first bytes were read to tell the protocol:
/// reads give them back first, writes go straight through.
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    /// `io` with `prefix` read from it already.
    pub fn new(prefix: Bytes, io: IO) -> Self {
        Prefixed { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Prefixed<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Splits a peer port's accepted connections by their first bytes: those
/// opening with [`PREFACE`] (preface consumed) to the second stream, every
/// other one (its first bytes given back) and every accept error to the
/// first, for the gRPC server. Each connection's first bytes are awaited
/// on a task of its own, up to [`PREFACE_TIMEOUT`], so a silent one holds
/// up no other. Runs on the current runtime until `incoming` ends or the
/// gRPC side is dropped; then `incoming` (the listener) is dropped too, so a
/// node started again in the same process can bind the port.
pub fn demux<S, IO, E>(
    incoming: S,
) -> (
    impl Stream<Item = Result<Prefixed<IO>, E>> + Send + 'static,
    impl Stream<Item = IO> + Send + 'static,
)
where
    S: Stream<Item = Result<IO, E>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    E: Send + 'static,
{
    let (grpc_tx, grpc_rx) = mpsc::channel(64);
    let (wire_tx, wire_rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(incoming);
        loop {
            // The gRPC server gone (the node stopped), the listener goes too.
            let accepted = tokio::select! {
                () = grpc_tx.closed() => return,
                accepted = incoming.next() => match accepted {
                    Some(accepted) => accepted,
                    None => return,
                },
            };
            let mut io = match accepted {
                Ok(io) => io,
                Err(e) => {
                    if grpc_tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let (grpc_tx, wire_tx) = (grpc_tx.clone(), wire_tx.clone());
            tokio::spawn(async move {
                let Ok(Ok(first)) =
                    tokio::time::timeout(PREFACE_TIMEOUT, read_up_to(&mut io, PREFACE.len())).await
                else {
                    return;
                };
                if first.as_ref() == PREFACE {
                    let _ = wire_tx.send(io).await;
                } else {
                    let _ = grpc_tx.send(Ok(Prefixed::new(first, io))).await;
                }
            });
        }
    });
    (ReceiverStream::new(grpc_rx), ReceiverStream::new(wire_rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> pb::FetchResponse {
        pb::FetchResponse {
            partitions: vec![
                pb::FetchResult {
                    topic: "t".into(),
                    partition: 0,
                    records: Bytes::from(vec![7u8; 100_000]),
                    high_watermark: 5,
                    ..pb::FetchResult::default()
                },
                pb::FetchResult {
                    topic: "t".into(),
                    partition: 1,
                    ..pb::FetchResult::default()
                },
                pb::FetchResult {
                    topic: "u".into(),
                    partition: 2,
                    records: Bytes::from_static(b"abc"),
                    ..pb::FetchResult::default()
                },
            ],
        }
    }

    #[tokio::test]
    async fn an_answer_crosses_whole_with_its_records() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let sent = response();
        let writer = tokio::spawn({
            let sent = sent.clone();
            async move { write_response(&mut a, Ok(sent.into())).await }
        });
        let got = read_response(&mut b).await.unwrap().unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn records_sent_in_chunks_arrive_joined_in_order() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let sent = response();
        // Partition 0: its field, then 200 chunks (more than one vectored
        // write gathers); partition 1: chunks only; partition 2: no entry.
        let more: Vec<Bytes> = (0..200u8)
            .map(|i| Bytes::from(vec![i; 50 + usize::from(i)]))
            .collect();
        let answer = Answer {
            response: sent.clone(),
            records: vec![more.clone(), vec![Bytes::new(), Bytes::from_static(b"xy")]],
        };
        let writer = tokio::spawn(async move { write_response(&mut a, Ok(answer)).await });
        let got = read_response(&mut b).await.unwrap().unwrap();
        writer.await.unwrap().unwrap();
        let mut expected = sent;
        let mut first = expected.partitions[0].records.to_vec();
        for chunk in &more {
            first.extend_from_slice(chunk);
        }
        expected.partitions[0].records = Bytes::from(first);
        expected.partitions[1].records = Bytes::from_static(b"xy");
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn an_error_answer_and_a_request_cross() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let error = pb::Error {
            code: pb::ErrorCode::InvalidRequest as i32,
            message: "no".into(),
            ..pb::Error::default()
        };
        write_response(&mut a, Err(error.clone())).await.unwrap();
        assert_eq!(read_response(&mut b).await.unwrap(), Err(error));
        let request = pb::ReplicaFetchRequest {
            replica_id: 3,
            broker_epoch: 9,
            max_wait_ms: 500,
            ..pb::ReplicaFetchRequest::default()
        };
        write_request(&mut a, &request).await.unwrap();
        drop(a);
        assert_eq!(read_request(&mut b).await.unwrap(), Some(request));
        assert!(
            read_request(&mut b).await.unwrap().is_none(),
            "closed between calls"
        );
    }

    #[tokio::test]
    async fn bad_frames_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(
            read_request(&mut b).await,
            Err(WireError::TooLarge {
                what: "request",
                ..
            })
        ));
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(&[9]).await.unwrap();
        assert!(matches!(
            read_response(&mut b).await,
            Err(WireError::Malformed { what: "answer", .. })
        ));
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(&[0, 0, 0, 0, 3, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        assert!(matches!(
            read_response(&mut b).await,
            Err(WireError::Malformed {
                what: "answer header",
                ..
            })
        ));
        let (mut a, mut b) = tokio::io::duplex(4096);
        let mut head = vec![0u8];
        let mut header = response();
        for p in &mut header.partitions {
            p.records = Bytes::new();
        }
        put_message(&mut head, "h", &header, MAX_HEADER_BYTES).unwrap();
        head.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        a.write_all(&head).await.unwrap();
        assert!(
            matches!(
                read_response(&mut b).await,
                Err(WireError::TooLarge {
                    what: "records",
                    ..
                })
            ),
            "records over the limit are refused before they are read"
        );
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        drop(a);
        assert!(
            matches!(read_request(&mut b).await, Err(WireError::Io(_))),
            "cut mid-frame"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_drops_a_client_silent_for_its_idle_timeout() {
        let answer = |_| async { Ok(pb::FetchResponse::default().into()) };
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(serve_connection(server, answer, std::future::pending()));
        write_request(&mut client, &pb::ReplicaFetchRequest::default())
            .await
            .unwrap();
        assert_eq!(
            read_response(&mut client).await.unwrap(),
            Ok(pb::FetchResponse::default())
        );
        let started = tokio::time::Instant::now();
        let ended = served.await.unwrap();
        assert!(
            matches!(&ended, Err(WireError::Io(e)) if e.kind() == io::ErrorKind::TimedOut),
            "{ended:?}"
        );
        assert!(started.elapsed() >= SERVER_IDLE_TIMEOUT);
        drop(client);
    }

    #[tokio::test]
    async fn demux_lets_go_of_the_listener_once_grpc_is_gone() {
        let (accept, accepted) = mpsc::channel::<io::Result<tokio::io::DuplexStream>>(1);
        let (grpc, wire) = demux(ReceiverStream::new(accepted));
        drop(grpc);
        tokio::time::timeout(Duration::from_secs(10), accept.closed())
            .await
            .expect("the accepted-connection stream is dropped");
        drop(wire);
    }

    /// Connections over in-memory pipes; the server ends go to the test.
    struct Pipes(std::sync::Mutex<mpsc::UnboundedSender<tokio::io::DuplexStream>>);

    impl crate::transport::Connector for Pipes {
        fn channel(&self, _: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
            unreachable!("the wire only")
        }

        fn probe(&self, _: &str) -> crate::transport::ProbeFuture {
            unreachable!("the wire only")
        }

        fn connect(&self, _: &str) -> crate::transport::ConnectFuture {
            let (client, server) = tokio::io::duplex(1 << 20);
            let sent = self.0.lock().unwrap().send(server);
            Box::pin(async move {
                sent.map_err(|_| io::Error::other("no test listening"))?;
                Ok(Box::new(client) as WireStream)
            })
        }
    }

    /// The next connection the client opened, its preface checked.
    async fn accept(
        servers: &mut mpsc::UnboundedReceiver<tokio::io::DuplexStream>,
    ) -> tokio::io::DuplexStream {
        let mut server = servers.recv().await.unwrap();
        let mut preface = [0u8; 8];
        server.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, PREFACE);
        server
    }

    /// Reads one request and answers it with an empty response.
    async fn answer_one(server: &mut tokio::io::DuplexStream) -> Option<pb::ReplicaFetchRequest> {
        let got = read_request(server).await.unwrap();
        write_response(server, Ok(pb::FetchResponse::default().into()))
            .await
            .unwrap();
        got
    }

    #[tokio::test]
    async fn a_call_cut_short_never_leaves_its_answer_to_the_next() {
        let (tx, mut servers) = mpsc::unbounded_channel();
        let mut connection = Connection::new(std::sync::Arc::new(Pipes(tx.into())));
        let request = |offset| pb::ReplicaFetchRequest {
            replica_id: offset,
            ..pb::ReplicaFetchRequest::default()
        };
        // The first call is dropped before its answer comes.
        let first_request = request(1);
        let cut = tokio::time::timeout(
            Duration::from_millis(20),
            connection.call("a", &first_request),
        );
        assert!(cut.await.is_err());
        let mut first = accept(&mut servers).await;
        assert_eq!(read_request(&mut first).await.unwrap(), Some(request(1)));
        // Its answer comes too late: the client has dropped that connection.
        assert!(write_response(&mut first, Ok(response().into()))
            .await
            .is_err());
        // The next call opens a new connection and gets its own answer.
        let serve = tokio::spawn(async move {
            let mut second = accept(&mut servers).await;
            let got = answer_one(&mut second).await;
            // A whole answer keeps the connection: the third call comes here.
            let third = answer_one(&mut second).await;
            (got, third, servers)
        });
        let answer = connection.call("a", &request(2)).await.unwrap().unwrap();
        assert_eq!(answer, pb::FetchResponse::default());
        connection.call("a", &request(3)).await.unwrap().unwrap();
        let (got, third, mut servers) = serve.await.unwrap();
        assert_eq!(got, Some(request(2)));
        assert_eq!(third, Some(request(3)));
        assert!(servers.try_recv().is_err(), "two connections in all");
        // The server has closed the kept connection (as after an idle
        // timeout): the next call goes through on a new one.
        let serve = tokio::spawn(async move {
            let mut again = accept(&mut servers).await;
            answer_one(&mut again).await
        });
        connection.call("a", &request(4)).await.unwrap().unwrap();
        assert_eq!(serve.await.unwrap(), Some(request(4)));
    }

    #[tokio::test]
    async fn prefixed_gives_the_first_bytes_back() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"rest").await.unwrap();
        drop(a);
        let mut p = Prefixed::new(Bytes::from_static(b"PRI * "), b);
        let mut all = Vec::new();
        p.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"PRI * rest");
    }

    #[tokio::test]
    async fn demux_sends_each_connection_its_way() {
        let (mut wire_client, wire_server) = tokio::io::duplex(1024);
        let (mut grpc_client, grpc_server) = tokio::io::duplex(1024);
        let (mut silent_client, silent_server) = tokio::io::duplex(1024);
        let incoming = tokio_stream::iter(vec![
            Ok::<_, io::Error>(silent_server),
            Ok(wire_server),
            Err(io::Error::other("accept failed")),
            Ok(grpc_server),
        ]);
        let (mut grpc, mut wire) = demux(incoming);
        open(&mut wire_client).await.unwrap();
        wire_client.write_all(b"after").await.unwrap();
        grpc_client.write_all(b"PRI * HTTP/2.0").await.unwrap();
        let mut routed = wire.next().await.unwrap();
        let mut after = [0u8; 5];
        routed.read_exact(&mut after).await.unwrap();
        assert_eq!(&after, b"after", "the preface is consumed");
        assert!(
            grpc.next().await.unwrap().is_err(),
            "the accept error reaches gRPC"
        );
        let mut g = grpc.next().await.unwrap().unwrap();
        let mut head = [0u8; 14];
        g.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"PRI * HTTP/2.0");
        // A connection that never speaks holds up no other; closed, it goes.
        silent_client.shutdown().await.unwrap();
        drop(silent_client);
    }
}
