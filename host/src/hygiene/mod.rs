//! Request hygiene before anything routes: one canonical path and one canonical authority,
//! so that the router, the filters and the upstream all see the same request.

mod authority;
mod path;

pub use authority::{AuthorityError, host_of, request_authority};
pub use path::PathError;

use crate::config::PathPolicy;

use http::Request;
use http::uri::{PathAndQuery, Uri};

use crate::error::{ErrorKind, GatewayError};

/// Puts `request`'s path in normal form and returns its canonical authority; a request
/// that has no single reading is a 400.
pub fn canonicalize<B>(
    request: &mut Request<B>,
    paths: &PathPolicy,
) -> Result<Option<String>, GatewayError> {
    let authority = request_authority(request.uri(), request.headers(), request.version())
        .map_err(|e| GatewayError::new(ErrorKind::BadRequest, e.reason()))?;
    normalize_uri(request.uri_mut(), paths)?;
    Ok(authority)
}

/// Normalises the path of `uri` in place; the query is kept as sent. `*` (`OPTIONS *`)
/// stays as it is.
pub fn normalize_uri(uri: &mut Uri, paths: &PathPolicy) -> Result<(), GatewayError> {
    let path = uri.path();
    if path == "*" {
        return Ok(());
    }
    let normal = paths
        .normalize(path)
        .map_err(|e| GatewayError::new(ErrorKind::BadRequest, e.reason()))?;
    if normal == path {
        return Ok(());
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal.into_owned(),
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(
        PathAndQuery::try_from(path_and_query)
            .map_err(|e| GatewayError::new(ErrorKind::BadRequest, format!("bad path: {e}")))?,
    );
    *uri = Uri::from_parts(parts)
        .map_err(|e| GatewayError::new(ErrorKind::BadRequest, format!("bad path: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests;
