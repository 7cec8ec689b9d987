//! The API's replies: a status with a JSON body, and the HTTP response made of one. Every route,
//! the token check and a write's outcome answer through here, so each reply has the same shape.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::Value;

use super::change::FieldError;

/// A status and its JSON body.
pub(super) type Reply = (u16, Value);

pub(super) fn reply(status: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// 400 for `field`.
pub(super) fn bad(field: &str, message: impl std::fmt::Display) -> Reply {
    (400, FieldError::new(field, message).json())
}
