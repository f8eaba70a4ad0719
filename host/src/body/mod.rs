//! The bodies the gateway sends: streamed from a peer, or held in full (produced by the
//! gateway or a filter, or buffered for a filter), with the trailers that came with them.

use std::any::Any;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Either;

mod budget;
mod streamed;

pub use budget::{BufferBudget, OverBudget, Reservation};
pub use streamed::{PeerBody, StreamError, Streamed, Upload, UploadFault};

/// Put in a response's extensions by a stream that outlives its response's head and bounds
/// its own waits (a push SSE session, with its keep-alive and send timeout). The server hands
/// it the request's in-flight mark, which stays until every clone of the handoff is dropped:
/// the stream's owner keeps one for as long as the stream lives. So the connection's idle
/// timeout does not cut a live stream, and a stream that ended (its client stopped reading,
/// say) no longer holds its connection, even while hyper still waits to write to it.
#[derive(Clone, Default)]
pub struct InFlightHandoff(Arc<Mutex<Option<Box<dyn Any + Send>>>>);

impl InFlightHandoff {
    /// Keeps `mark` until the last clone of the handoff is dropped.
    pub fn hold(&self, mark: Box<dyn Any + Send>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(mark);
        }
    }
}

/// The body of requests to upstreams and responses to clients: streamed from a peer under
/// time limits, or held in full.
pub type ProxyBody = Either<Streamed, Buffered>;

/// A body held in memory, and its trailers if it had any (a gRPC reply's `grpc-status`
/// must reach the client after a filter read the body).
#[derive(Debug, Default, Clone)]
pub struct Buffered {
    data: Option<Bytes>,
    /// Boxed: most bodies have none, and every response carries this type.
    trailers: Option<Box<HeaderMap>>,
}

impl Buffered {
    /// A body of `data` and, after it, `trailers`.
    pub fn new(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            data: Some(data).filter(|d| !d.is_empty()),
            trailers: trailers.map(Box::new),
        }
    }
}

/// A body the gateway holds in full, without trailers.
pub fn full_body(bytes: Bytes) -> ProxyBody {
    held_body(bytes, None)
}

/// A body held in full, followed by `trailers`.
pub fn held_body(bytes: Bytes, trailers: Option<HeaderMap>) -> ProxyBody {
    Either::Right(Buffered::new(bytes, trailers))
}

impl Body for Buffered {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(*t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn yields_the_data_then_the_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let collected = Buffered::new(Bytes::from_static(b"abc"), Some(trailers))
            .collect()
            .await
            .unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(collected.to_bytes(), "abc");
    }

    #[tokio::test]
    async fn an_empty_body_ends_at_once() {
        let body = Buffered::new(Bytes::new(), None);
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
