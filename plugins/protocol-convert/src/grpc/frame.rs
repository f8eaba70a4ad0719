//! gRPC message framing over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md, "Length-Prefixed-Message"):
//! a compressed flag (1 byte), the message length (4 bytes, big-endian), the message.

/// The prefix length.
const PREFIX: usize = 5;

/// One uncompressed message, framed.
pub fn encode(message: &[u8]) -> Result<Vec<u8>, String> {
    let len = u32::try_from(message.len()).map_err(|_| "the message is too large")?;
    let mut framed = Vec::with_capacity(PREFIX + message.len());
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    Ok(framed)
}

/// The one message of a unary reply.
pub fn decode(body: &[u8]) -> Result<&[u8], String> {
    let (prefix, rest) = body
        .split_first_chunk::<PREFIX>()
        .ok_or("the reply has no message")?;
    let [flag, len @ ..] = *prefix;
    if flag != 0 {
        return Err("the reply message is compressed, which was not asked for".into());
    }
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| "the message is too large")?;
    if rest.len() != len {
        return Err("a unary reply must hold exactly one message".into());
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_one_message() {
        let framed = encode(b"abc").unwrap();
        assert_eq!(framed, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(decode(&framed), Ok(&b"abc"[..]));
        assert!(decode(&framed[..6]).is_err());
        assert!(decode(&[framed.clone(), framed.clone()].concat()).is_err());
        assert!(decode(&[1, 0, 0, 0, 0]).is_err());
        assert_eq!(decode(&[0, 0, 0, 0, 0]), Ok(&b""[..]));
    }
}
