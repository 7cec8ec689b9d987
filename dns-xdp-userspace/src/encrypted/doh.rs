//! DNS over HTTPS (RFC 8484): `GET /dns-query?dns=` (base64url without padding) and `POST
//! /dns-query` with an `application/dns-message` body, over HTTP/2 or HTTP/1.1 as ALPN chose, with
//! TCP's connection budgets, a handshake timeout, a cap on concurrent HTTP/2 streams and on queries
//! per connection. Answers carry `cache-control: max-age=` their smallest TTL (section 5.1).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use base64::Engine as _;
use bytes::Bytes;
use dns_xdp_common::dns::MAX_MESSAGE;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::{HANDSHAKE_TIMEOUT, MAX_CONCURRENT_STREAMS, MAX_QUERIES_PER_CONNECTION};

use crate::config::TcpLimits;
use crate::http::MAX_HEADER_BYTES;
use crate::replication::Replies;
use crate::respond::Transport;
use crate::responder::{Outcome, Responder};
use crate::tcp::{ACCEPT_BACKOFF, PerClient};

/// The media type of a DNS message (RFC 8484 section 6).
const DNS_MESSAGE: &str = "application/dns-message";
/// The path we answer on (RFC 8484 section 3 leaves it to the server; this is the usual one).
const PATH: &str = "/dns-query";

/// Accepts and serves DoH connections on `listener` for ever.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, responder: Arc<Responder>, limits: TcpLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(err) => {
                log::debug!("https accept: {err}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = per_client.take(peer.ip(), limits.max_per_client) else {
            log::debug!("https {peer}: over {} connections from one address; closed", limits.max_per_client);
            continue;
        };
        let _ = conn.set_nodelay(true);
        let (responder, tls) = (responder.clone(), tls.clone());
        tokio::spawn(async move {
            let served = async {
                let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(conn)).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(err)) => return log::debug!("https {peer}: TLS handshake: {err}"),
                    Err(_) => return log::debug!("https {peer}: TLS handshake timed out"),
                };
                connection(conn, peer, responder, limits).await
            };
            if tokio::time::timeout(limits.lifetime, served).await.is_err() {
                log::debug!("https {peer}: closed after {:?} (lifetime)", limits.lifetime);
            }
            drop((slot, permit));
        });
    }
}

/// One connection's requests, HTTP/2 or HTTP/1.1; shut down gracefully once it has sent
/// `MAX_QUERIES_PER_CONNECTION` queries.
async fn connection<IO>(io: IO, peer: SocketAddr, responder: Arc<Responder>, limits: TcpLimits)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let queries = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let service = {
        let (queries, enough) = (queries.clone(), enough.clone());
        hyper::service::service_fn(move |req| {
            if queries.fetch_add(1, Relaxed) + 1 == MAX_QUERIES_PER_CONNECTION {
                enough.notify_one();
            }
            let responder = responder.clone();
            async move { Ok::<_, Infallible>(request(req, peer, &responder, limits).await) }
        })
    };
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        // Also the idle timeout of a kept-alive HTTP/1.1 connection.
        .header_read_timeout(limits.idle)
        .max_buf_size(MAX_HEADER_BYTES);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        // A peer that stops answering pings is gone: its connection is closed.
        .keep_alive_interval(limits.idle)
        .keep_alive_timeout(limits.write);
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = enough.notified() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        log::debug!("https {peer}: {err}");
    }
}

/// Answers one request.
async fn request(
    req: Request<Incoming>,
    peer: SocketAddr,
    responder: &Responder,
    limits: TcpLimits,
) -> Response<Full<Bytes>> {
    if req.uri().path() != PATH {
        return status(StatusCode::NOT_FOUND);
    }
    let query = match *req.method() {
        Method::GET => {
            let param = req.uri().query().unwrap_or("").split('&').find_map(|kv| kv.strip_prefix("dns="));
            // Base64url without padding (RFC 8484 section 4.1); padding is tolerated.
            match param.map(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('='))) {
                Some(Ok(q)) => q,
                _ => return status(StatusCode::BAD_REQUEST),
            }
        }
        Method::POST => {
            let media = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            if media.and_then(|m| m.split(';').next()).map(str::trim) != Some(DNS_MESSAGE) {
                return status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            let body = Limited::new(req.into_body(), MAX_MESSAGE).collect();
            match tokio::time::timeout(limits.idle, body).await {
                Ok(Ok(body)) => body.to_bytes().to_vec(),
                Ok(Err(_)) => return status(StatusCode::PAYLOAD_TOO_LARGE),
                Err(_) => return status(StatusCode::REQUEST_TIMEOUT),
            }
        }
        _ => return status(StatusCode::METHOD_NOT_ALLOWED),
    };
    let reply = match responder.respond(&query, peer, Transport::Https) {
        Outcome::Reply(reply) => reply,
        // One HTTP response holds one DNS message: a zone transfer's stream does not fit.
        Outcome::Messages(Replies::Ready(mut replies)) if replies.len() == 1 => replies.next().expect("one message"),
        Outcome::Messages(_) => return status(StatusCode::NOT_IMPLEMENTED),
        Outcome::Withheld | Outcome::Dropped => return status(StatusCode::BAD_REQUEST),
    };
    let max_age = super::message::min_ttl(&reply);
    let mut response = Response::new(Full::new(Bytes::from(reply)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    if let Some(ttl) = max_age {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(&format!("max-age={ttl}")).expect("ASCII"));
    }
    response
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
