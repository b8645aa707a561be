//! A unary gRPC call whose answer is decoded from the HTTP/2 frames as they
//! came, for answers that carry record batches.
//!
//! tonic's client copies every received DATA frame into a message buffer
//! (growing it as the message arrives) before decoding: one user-space copy
//! of every replicated byte on the follower, 5-8% of a broker's CPU in the
//! 3-node profiles (docs/BENCHMARKS.md). Here the frames are kept as the
//! HTTP/2 layer hands them over; an answer that came in one frame is decoded
//! straight from it (prost's `bytes` fields then slice it, no copy), one that
//! came in several is joined once into a buffer of its exact length. The
//! request goes through the same [`Channel`] (its connection, timeouts and
//! the simulator's network), and the status is read as tonic reads it: from
//! the trailers, or from the headers of a trailers-only answer.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::ServiceExt;

/// The gRPC message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// Calls `path` (`/package.Service/Method`) on `channel` with `request`; the
/// answer, or the status the server (or the transport) gave.
pub async fn call<Req, Resp>(
    channel: Channel,
    path: &'static str,
    request: &Req,
) -> Result<Resp, Status>
where
    Req: prost::Message,
    Resp: prost::Message + Default,
{
    let body = frame(request)?;
    let http = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(body)))
        .map_err(|e| Status::internal(format!("cannot build the request: {e}")))?;
    let response = channel
        .oneshot(http)
        .await
        .map_err(|e| Status::unavailable(format!("{path}: {e}")))?;
    let (parts, mut body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(Status::unknown(format!(
            "{path}: HTTP status {}",
            parts.status
        )));
    }
    // A trailers-only answer: the status is in the headers, no message.
    if let Some(status) = Status::from_header_map(&parts.headers) {
        return Err(not_ok(status, path));
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => chunks.push(data),
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    match trailers.as_ref().and_then(Status::from_header_map) {
        Some(status) if status.code() == Code::Ok => {}
        Some(status) => return Err(not_ok(status, path)),
        None => {
            return Err(Status::internal(format!(
                "{path}: the answer ended without a status"
            )))
        }
    }
    let message =
        one_message(chunks).map_err(|reason| Status::internal(format!("{path}: {reason}")))?;
    Resp::decode(message)
        .map_err(|e| Status::internal(format!("{path}: cannot decode the answer: {e}")))
}

/// A status from the server, which may say Ok with no message at all.
fn not_ok(status: Status, path: &str) -> Status {
    if status.code() == Code::Ok {
        Status::internal(format!("{path}: the answer carried no message"))
    } else {
        status
    }
}

/// `message` behind its gRPC prefix (uncompressed).
fn frame(message: &impl prost::Message) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    let prefix_len = u32::try_from(len)
        .map_err(|_| Status::invalid_argument("the request is larger than 4 GiB"))?;
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.extend_from_slice(&[0]);
    buf.extend_from_slice(&prefix_len.to_be_bytes());
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(format!("cannot encode the request: {e}")))?;
    Ok(buf.freeze())
}

/// The one uncompressed message in a body's DATA chunks, without its prefix:
/// a slice of the chunk it came in, or the chunks joined once.
fn one_message(chunks: Vec<Bytes>) -> Result<Bytes, String> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let mut body = if chunks.len() == 1 {
        chunks.into_iter().next().unwrap_or_default()
    } else {
        let mut joined = BytesMut::with_capacity(total);
        for chunk in &chunks {
            joined.extend_from_slice(chunk);
        }
        joined.freeze()
    };
    if body.len() < PREFIX {
        return Err(format!(
            "the answer has {} bytes, fewer than a message prefix",
            body.len()
        ));
    }
    let compressed = body.get_u8();
    if compressed != 0 {
        return Err("the answer is compressed, which was not asked for".into());
    }
    let len = body.get_u32() as usize;
    if body.len() != len {
        return Err(format!(
            "the answer's prefix says {len} bytes, {} came (one message expected)",
            body.len()
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixed(len: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn a_message_in_one_chunk_is_sliced_from_it_without_a_copy() {
        let chunk = Bytes::from(prefixed(3, b"abc"));
        let start = chunk.as_ptr() as usize;
        let message = one_message(vec![chunk]).unwrap();
        assert_eq!(&message[..], b"abc");
        assert_eq!(message.as_ptr() as usize, start + PREFIX);
    }

    #[test]
    fn a_message_in_many_chunks_is_joined_whatever_the_cuts() {
        let whole = prefixed(6, b"abcdef");
        for cut in 1..whole.len() {
            let chunks = vec![
                Bytes::copy_from_slice(&whole[..cut]),
                Bytes::new(),
                Bytes::copy_from_slice(&whole[cut..]),
            ];
            assert_eq!(&one_message(chunks).unwrap()[..], b"abcdef");
        }
    }

    #[test]
    fn short_compressed_or_mismatched_answers_are_refused() {
        assert!(one_message(vec![])
            .unwrap_err()
            .contains("fewer than a message prefix"));
        assert!(one_message(vec![Bytes::from(prefixed(3, b"ab"))])
            .unwrap_err()
            .contains("says 3 bytes, 2 came"));
        assert!(one_message(vec![Bytes::from(prefixed(1, b"ab"))]).is_err());
        let mut compressed = prefixed(1, b"a");
        compressed[0] = 1;
        assert!(one_message(vec![Bytes::from(compressed)])
            .unwrap_err()
            .contains("compressed"));
    }
}
