//! The accept loop: HTTP/1.1 connections served by hyper with our limits on the request head,
//! the peer address as `ConnectInfo`, hyper's own refusals given problem bodies, and graceful
//! shutdown (stop accepting, let open connections finish their requests).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::head_refusal::ProblemRefusals;

/// About the largest request head (request line and headers) hyper buffers before it answers
/// 431 itself (it checks between reads, so a head arriving in one large read may exceed it).
/// Heads within it meet the router's precise limits first: a target over
/// [`super::edge::MAX_URI_BYTES`] is 414, headers over [`super::edge::MAX_HEADER_BYTES`] 431.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;

/// The most headers one request may carry (hyper's default); more is 431.
pub const MAX_HEADERS: usize = 100;

/// How long a client may take to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `stop` fires, then waits for open connections to
/// finish (the caller bounds that wait).
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Responses go out in one write; Nagle would only delay the next one.
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .serve_connection(
                TokioIo::new(ProblemRefusals::new(stream)),
                TowerToHyperService::new(service),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
