//! The demo upstream's gRPC service, `weir.demo.Greeter` (`examples/grpc/greeter.proto`),
//! unary over h2c: enough for the example config to show gRPC-JSON transcoding with no other
//! server.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, header};
use prost::Message;

use crate::Reply;

/// `weir.demo.HelloRequest`.
#[derive(Clone, PartialEq, Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

/// `weir.demo.HelloReply`.
#[derive(Clone, PartialEq, Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// The path of the one method.
pub const SAY_HELLO: &str = "/weir.demo.Greeter/SayHello";

/// gRPC status codes the service answers with.
const OK: u8 = 0;
const INVALID_ARGUMENT: u8 = 3;

/// Answers one `SayHello` call whose request body (one length-prefixed message) is `body`.
pub fn say_hello(body: &[u8]) -> Response<Reply> {
    let Some(message) = unframe(body) else {
        return status(INVALID_ARGUMENT, "expected one uncompressed message", None);
    };
    let request = match HelloRequest::decode(message) {
        Ok(request) => request,
        Err(e) => return status(INVALID_ARGUMENT, &format!("bad HelloRequest: {e}"), None),
    };
    if request.name.is_empty() {
        return status(INVALID_ARGUMENT, "name is required", None);
    }
    let reply = HelloReply {
        message: format!("Hello, {}!", request.name),
    };
    status(OK, "", Some(frame(&reply.encode_to_vec())))
}

/// The message of a gRPC body holding exactly one uncompressed message.
fn unframe(body: &[u8]) -> Option<&[u8]> {
    let (&compressed, rest) = body.split_first()?;
    let (length, message) = rest.split_first_chunk::<4>()?;
    (compressed == 0 && u32::from_be_bytes(*length) as usize == message.len()).then_some(message)
}

fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(message);
    framed.freeze()
}

/// A reply: the message (if any), then `grpc-status` and `grpc-message` in trailers.
fn status(code: u8, message: &str, reply: Option<Bytes>) -> Response<Reply> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(value) = HeaderValue::from_str(message)
        && !message.is_empty()
    {
        trailers.insert("grpc-message", value);
    }
    let mut response = Response::new(Reply {
        data: reply.unwrap_or_default(),
        trailers: Some(trailers),
    });
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let framed = frame(b"abc");
        assert_eq!(unframe(&framed), Some(&b"abc"[..]));
        assert_eq!(unframe(&framed[..6]), None, "a short body is refused");
        assert_eq!(unframe(b""), None);
    }
}
