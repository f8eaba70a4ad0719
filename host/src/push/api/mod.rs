//! The HTTP endpoints of push routes: publish, the caller's devices, and the connect
//! endpoint's checks before a WebSocket or SSE session starts. Bad input is a 4xx with a
//! stable code and changes nothing.

mod devices;
mod input;
mod publish;
mod refusal;

use std::sync::Arc;

use http::Response;

use super::PushService;
use super::decision::PushRouter;
use crate::body::ProxyBody;
use crate::config::push::{PushConfig, PushEndpoint};
pub use devices::Registration;
pub(super) use input::{consumer, query};
pub(super) use refusal::{Refusal, unknown_device};

/// A request to a push endpoint, as the route's request filters left it.
pub struct PushRequest<'a> {
    /// Method, URI and headers.
    pub parts: &'a http::request::Parts,
    /// The gateway's id for the request.
    pub request_id: &'a str,
    /// The body.
    pub body: ProxyBody,
    /// The user an auth filter identified (its `consumer` variable), if one did.
    pub consumer: Option<String>,
    /// The client's side of a WebSocket upgrade, if it asked for one.
    pub websocket: Option<hyper::upgrade::OnUpgrade>,
    /// The client connection's place under the connection caps, held by a session for
    /// as long as it lasts.
    pub place: Option<Arc<crate::admission::Admitted>>,
}

impl PushService {
    /// Serves a push route's endpoint for `request` (the route's request filters ran
    /// already).
    pub async fn serve(
        self: &Arc<Self>,
        endpoint: PushEndpoint,
        request: PushRequest<'_>,
        config: &PushConfig,
        router: &dyn PushRouter,
    ) -> Response<ProxyBody> {
        let request_id = request.request_id;
        let served = match endpoint {
            PushEndpoint::Publish => self.publish(request, config, router).await,
            PushEndpoint::Devices => self.devices_endpoint(request, config).await,
            PushEndpoint::Connect => self.connect(request, config).await,
        };
        served.unwrap_or_else(|refusal| refusal.response(request_id))
    }
}
