//! Scaffolding shared by the cross-crate tests: a real axum server on 127.0.0.1:0
//! and a GET that returns the answer's text.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use axum::Router;
use loggier_test_support::http_client;

/// Serves `app` (with the peer address as `ConnectInfo`) on an ephemeral port of
/// 127.0.0.1 in a background task; returns the bound address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

/// GETs `url` with `headers` and returns the body text; panics if the request fails.
pub async fn get_text(url: &str, headers: &[(&str, &str)]) -> String {
    let mut req = http_client().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}
