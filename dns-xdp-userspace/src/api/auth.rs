//! The API's bearer token: `Authorization: Bearer TOKEN`, checked before a byte of the body is
//! read (server.rs stacks it as a tower layer). Knows nothing of routes or zones.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use serde_json::json;
use subtle::ConstantTimeEq as _;
use tower_http::validate_request::ValidateRequest;

use super::reply::reply;

/// Checks `Authorization: Bearer TOKEN` (the scheme is case-insensitive, RFC 9110 section 11.1).
/// Both sides are hashed first and the digests compared in constant time, so neither the position
/// of the first wrong byte nor the token's length shows in the time taken.
#[derive(Clone)]
pub(super) struct Bearer {
    digest: Arc<[u8; 32]>,
}

impl Bearer {
    pub(super) fn new(token: &str) -> Bearer {
        Bearer { digest: Arc::new(sha256(token.as_bytes())) }
    }

    fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization.map(HeaderValue::as_bytes) else { return false };
        let Some(space) = value.iter().position(|b| *b == b' ') else { return false };
        let (scheme, credentials) = value.split_at(space);
        let credentials = credentials.trim_ascii();
        // Evaluated whatever the scheme, so a wrong scheme takes the time of a wrong token.
        let digest_matches: bool = sha256(credentials).ct_eq(&self.digest[..]).into();
        scheme.eq_ignore_ascii_case(b"bearer") & digest_matches
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

impl<B> ValidateRequest<B> for Bearer {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Body>> {
        if self.accepts(request.headers().get(header::AUTHORIZATION)) {
            return Ok(());
        }
        let mut response = reply(401, &json!({"error": "missing or wrong bearer token"}));
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bearer_scheme_with_the_token_passes() {
        let bearer = Bearer::new("s3cret");
        let accepts = |v: &'static str| bearer.accepts(Some(&HeaderValue::from_static(v)));
        assert!(accepts("Bearer s3cret"));
        assert!(accepts("bearer  s3cret "));
        assert!(!accepts("Bearer s3cre"));
        assert!(!accepts("Basic s3cret"));
        assert!(!accepts("Bearers3cret"));
        assert!(!bearer.accepts(None));
    }
}
