//! The API's server: the shared HTTP layer (crate::http) with the API's own limits and the token
//! check stacked in front of its routes. Decides no request itself.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::validate_request::ValidateRequestHeaderLayer;

use super::auth::Bearer;
use super::routes::handle;
use crate::replication::Replication;

/// Largest request body (a batch of changes); larger gets 413 before it is read.
const MAX_BODY: usize = 1 << 20;
/// Longest pause between two pieces of a request body (a client trickling its body).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests past the token check running at once; more wait for a slot (within the request timeout).
const MAX_IN_FLIGHT: usize = 64;
/// Open connections at once; past that, new ones are closed at accept. Each idle one is closed
/// after `http::HEAD_TIMEOUT`, so this only has to exceed what arrives within that time.
const MAX_CONNECTIONS: usize = 8192;
/// A request's whole run time beyond the quorum deadline (its body, a wait for a slot, the
/// journal fsync); past it the client gets 408. The write itself stays and keeps propagating.
const REQUEST_SLACK: Duration = Duration::from_secs(30);

pub async fn serve(listener: TcpListener, repl: Arc<Replication>, token: &str, tls: Option<TlsAcceptor>) {
    crate::http::serve(listener, router(repl, token), tls, MAX_CONNECTIONS, "API").await
}

/// The API with its limits, outermost first: request timeout (408), bearer token (401, before a
/// byte of the body is read), a slot among `MAX_IN_FLIGHT`, body pace, body size (413).
fn router(repl: Arc<Replication>, token: &str) -> Router {
    let request_timeout = repl.config.quorum_deadline + REQUEST_SLACK;
    Router::new()
        .fallback(handle)
        .with_state(repl)
        // The size limit innermost, so a body cut off at the limit reaches the handler as 413.
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .layer(ValidateRequestHeaderLayer::custom(Bearer::new(token)))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
}
