//! Config text the tests build on: the common "one upstream and one route" layout.

use std::fmt::Display;

/// An upstream `u` with the one target `target` and a route `r` to it, followed by
/// `route_extra` (more keys of the route, then its filters).
pub fn one_route(target: impl Display, route_extra: &str) -> String {
    named_route(target, "r", route_extra)
}

/// Like [`one_route`], with the route called `name`.
pub fn named_route(target: impl Display, name: &str, route_extra: &str) -> String {
    format!(
        "[upstreams.u]\ntargets = [\"{target}\"]\n[[routes]]\nname = \"{name}\"\nupstream = \"u\"\n\
         {route_extra}"
    )
}
