//! The one response body type used throughout: a boxed, streaming body, so upstream bodies
//! pass through without being collected and our own small bodies share the same type.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Box any streaming body (e.g. hyper's `Incoming`) without buffering it.
pub fn stream<B>(b: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// Read `body` whole when it is at most `cap` bytes. A larger one is handed back as a body
/// that replays what was read and streams the rest, so the caller can pass it on unchanged.
pub async fn collect_capped(mut body: Body, cap: usize) -> Result<Bytes, Body> {
    use http_body::Frame;
    let mut buf = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(buf.freeze()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if buf.len() + data.len() <= cap => buf.extend_from_slice(&data),
                Ok(data) => {
                    let head = [Ok(Frame::data(buf.freeze())), Ok(Frame::data(data))];
                    let rest = http_body_util::BodyStream::new(body);
                    let replay = futures_util::stream::iter(head).chain(rest);
                    return Err(http_body_util::StreamBody::new(replay).boxed_unsync());
                }
                // Trailers end what is read here; a small body with trailers keeps its data.
                Err(_) => return Ok(buf.freeze()),
            },
            Some(Err(e)) => {
                let replay = futures_util::stream::iter([Ok(Frame::data(buf.freeze())), Err(e)]);
                return Err(http_body_util::StreamBody::new(replay).boxed_unsync());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_bodies_are_collected_large_ones_replayed_whole() {
        assert_eq!(collect_capped(full("hello"), 5).await.unwrap(), Bytes::from("hello"));
        let chunks: Vec<Result<http_body::Frame<Bytes>, BoxError>> = (0..4).map(|i| Ok(http_body::Frame::data(Bytes::from(vec![i as u8; 3])))).collect();
        let big = stream(http_body_util::StreamBody::new(futures_util::stream::iter(chunks)));
        let replay = collect_capped(big, 7).await.unwrap_err();
        let all = replay.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], &[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    }
}
