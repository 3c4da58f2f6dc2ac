//! [`AxumMeta`]: route template from `MatchedPath`, client address from `ConnectInfo`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath};
use http::Request;
use loggier_tower::{ClientAddr, RequestMeta};

/// The [`RequestMeta`] for axum: the route template is axum's [`MatchedPath`] (e.g.
/// `/users/{id}`; none for the fallback), the client IP comes from
/// [`ConnectInfo<SocketAddr>`] (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`) or a [`ClientAddr`]
/// extension.
///
/// `MatchedPath` is only known after routing, so the layer must run inside the router:
/// [`Router::layer`](axum::Router::layer) — which
/// [`LoggierRouterExt`](crate::LoggierRouterExt) uses — does that.
#[derive(Debug, Clone, Copy, Default)]
pub struct AxumMeta;

impl<B> RequestMeta<B> for AxumMeta {
    fn route(&self, request: &Request<B>) -> Option<Arc<str>> {
        request
            .extensions()
            .get::<MatchedPath>()
            .map(|m| Arc::from(m.as_str()))
    }

    fn client_ip(&self, request: &Request<B>) -> Option<IpAddr> {
        let ext = request.extensions();
        ext.get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .or_else(|| ext.get::<ClientAddr>().map(|a| a.0.ip()))
    }
}
