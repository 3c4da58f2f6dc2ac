//! `#[trace_function]` stacked under actix's `#[get]` route macro and called from a
//! handler behind the Loggier middleware: the timing records carry the request id,
//! and the nested one names the outer as its parent. Global state (`set_global`):
//! its own test binary.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, get};
use loggier_actix::{Loggier, trace_function};
use loggier_test_support::scenarios::new_id;
use loggier_test_support::test_client;

#[get("/checkout")]
#[trace_function(name = "actix.checkout", threshold_ms = 0)]
async fn checkout() -> HttpResponse {
    actix_web::rt::time::sleep(Duration::from_millis(2)).await;
    HttpResponse::Ok()
        .content_type("text/plain")
        .body(price(3).to_string())
}

#[trace_function(name = "actix.price", threshold_ms = 0)]
fn price(n: u32) -> u32 {
    n * 100
}

#[actix_web::test]
async fn timed_actix_handler_and_helper_carry_the_request_and_parent() {
    let (client, records) = test_client("trace-in-actix");
    loggier_core::set_global(client.clone());
    let app_client = client.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(Loggier::new(app_client.clone()))
            .service(checkout)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", 0))
    .expect("bind 127.0.0.1:0");
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let id = new_id("actix-timed");
    let resp = loggier_test_support::http_client()
        .get(format!("{base}/checkout"))
        .header("x-request-id", &id)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.text().await.expect("body"), "300");

    let outer = records
        .wait_for("checkout timing", |r| {
            r["timing"]["name"] == "actix.checkout"
        })
        .await;
    assert_eq!(outer["context"]["request_id"], id.as_str());
    assert_eq!(outer["timing"]["parent"], id.as_str());
    let inner = records
        .wait_for("price timing", |r| r["timing"]["name"] == "actix.price")
        .await;
    assert_eq!(inner["timing"]["parent"], outer["timing"]["id"]);

    handle.stop(true).await;
}
