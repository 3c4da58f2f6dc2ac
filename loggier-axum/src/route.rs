//! [`AxumMeta`]: route template from `MatchedPath`, client address from `ConnectInfo`.

use std::cell::RefCell;
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
            .map(|m| shared_route(m.as_str()))
    }

    fn client_ip(&self, request: &Request<B>) -> Option<IpAddr> {
        let ext = request.extensions();
        ext.get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .or_else(|| ext.get::<ClientAddr>().map(|a| a.0.ip()))
    }
}

/// Route templates remembered per thread.
const MEMO_SIZE: usize = 8;

/// The route templates this thread handed out last, each with the address of the
/// text axum's router holds for it: `MatchedPath` keeps its `Arc<str>` private, so
/// without this every request would copy its template into a new one.
struct RouteMemo {
    entries: [Option<(usize, Arc<str>)>; MEMO_SIZE],
    next: usize,
}

thread_local! {
    static ROUTES: RefCell<RouteMemo> = const {
        RefCell::new(RouteMemo {
            entries: [const { None }; MEMO_SIZE],
            next: 0,
        })
    };
}

/// `route` as an `Arc<str>` shared with the earlier requests of the route on this
/// thread (found by the address of axum's text, confirmed by the text itself, so a
/// reused address never gives another route); a new one (remembered in place of
/// the oldest) otherwise.
fn shared_route(route: &str) -> Arc<str> {
    let addr = route.as_ptr().addr();
    let found = ROUTES.try_with(|memo| {
        let mut memo = memo.borrow_mut();
        let hit = memo
            .entries
            .iter()
            .flatten()
            .find_map(|(a, r)| (*a == addr && **r == *route).then(|| Arc::clone(r)));
        hit.unwrap_or_else(|| {
            let r: Arc<str> = Arc::from(route);
            let slot = memo.next;
            memo.entries[slot] = Some((addr, Arc::clone(&r)));
            memo.next = (slot + 1) % MEMO_SIZE;
            r
        })
    });
    found.unwrap_or_else(|_| Arc::from(route))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_shared_between_its_requests_and_never_mixed_up() {
        let a = String::from("/users/{id}");
        let first = shared_route(&a);
        let again = shared_route(&a);
        assert_eq!(&*first, "/users/{id}");
        assert!(Arc::ptr_eq(&first, &again), "same route, same Arc");
        // More routes than the memo holds: each still answers with its own text.
        let many: Vec<String> = (0..MEMO_SIZE + 3).map(|i| format!("/r{i}")).collect();
        for r in &many {
            assert_eq!(&*shared_route(r), r.as_str());
        }
        // The same address holding other text is another route.
        let mut text = String::from("/orders/{id}");
        let orders = shared_route(&text);
        text.replace_range(1..7, "things");
        assert_eq!(&*shared_route(&text), "/things/{id}");
        assert_eq!(&*orders, "/orders/{id}");
    }
}
