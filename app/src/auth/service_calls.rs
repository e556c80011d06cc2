//! Verification of signed service calls, as axum middleware in front of the server functions.
//! A request that names a service is judged by its headers first (a known service, a fresh
//! timestamp, a well-formed nonce and acting user: nothing of the body is read for a request
//! that fails these), then its body is streamed and hashed within the route's own limit (an
//! upload's file size, 1 MiB for every other call), the signature checked in constant time
//! and the nonce spent, and only then is the request handed on with a `VerifiedService`.

use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::principal::VerifiedService;
use super::signing::{self, SignedParts};
use crate::config::ServiceSettings;
use crate::error::ApiError;
use crate::state::{AppState, internal};

/// Largest body a signed call other than an upload may carry.
pub const MAX_SIGNED_CALL_BODY: usize = 1024 * 1024;

/// The one signed route that carries a file.
pub const UPLOAD_PATH: &str = "/api/documents/upload";

/// Why a signed call was refused (logged; the client only sees `unauthenticated`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("unknown service")]
    UnknownService,
    #[error("missing or malformed signing header {0}")]
    MissingHeader(&'static str),
    #[error("timestamp outside the accepted window")]
    Stale,
    #[error("malformed nonce")]
    BadNonce,
    #[error("malformed acting user")]
    BadActingUser,
    #[error("malformed content type")]
    BadContentType,
    #[error("signature mismatch")]
    BadSignature,
    #[error("nonce already used")]
    Replay,
}

/// A call whose headers passed: what is left is to hash its body and check the signature.
#[derive(Debug)]
pub struct Claimed<'a> {
    name: &'a str,
    service: &'a ServiceSettings,
    timestamp: i64,
    nonce: &'a str,
    acting_user: &'a str,
    acting_telegram_user: Option<i64>,
    content_type: &'a str,
    signature: &'a str,
}

/// Everything that can be judged before the body is read.
pub fn check_headers<'a>(
    headers: &'a http::HeaderMap,
    services: &'a std::collections::BTreeMap<String, ServiceSettings>,
    now: i64,
) -> Result<Claimed<'a>, Rejection> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or(Rejection::MissingHeader(name))
    };
    let (name, service) = services
        .get_key_value(header(signing::HEADER_SERVICE)?)
        .ok_or(Rejection::UnknownService)?;
    let timestamp: i64 = header(signing::HEADER_TIMESTAMP)?
        .parse()
        .map_err(|_| Rejection::MissingHeader(signing::HEADER_TIMESTAMP))?;
    if (now - timestamp).abs() > signing::MAX_SKEW_SECS {
        return Err(Rejection::Stale);
    }
    let nonce = header(signing::HEADER_NONCE)?;
    if !(16..=64).contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Rejection::BadNonce);
    }
    let acting_user = headers
        .get(signing::HEADER_ACTING_USER)
        .map(|value| value.to_str().map_err(|_| Rejection::BadActingUser))
        .transpose()?
        .unwrap_or("");
    let acting_telegram_user =
        signing::parse_acting_user(acting_user).map_err(|_| Rejection::BadActingUser)?;
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(|value| value.to_str().map_err(|_| Rejection::BadContentType))
        .transpose()?
        .unwrap_or("");
    let signature = header(signing::HEADER_SIGNATURE)?;
    Ok(Claimed {
        name,
        service,
        timestamp,
        nonce,
        acting_user,
        acting_telegram_user,
        content_type,
        signature,
    })
}

impl Claimed<'_> {
    /// The signature over the request line and the body's digest.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        body_sha256: [u8; 32],
    ) -> Result<VerifiedService, Rejection> {
        let parts = SignedParts {
            service: self.name,
            timestamp: self.timestamp,
            nonce: self.nonce,
            method,
            path_and_query,
            acting_user: self.acting_user,
            content_type: self.content_type,
            body_sha256,
        };
        if !parts.verify(
            self.service.secret.expose_secret().as_bytes(),
            self.signature,
        ) {
            return Err(Rejection::BadSignature);
        }
        Ok(VerifiedService {
            name: self.name.to_owned(),
            permissions: Arc::from(self.service.permissions.clone()),
            acting_telegram_user: self.acting_telegram_user,
        })
    }
}

/// Checks everything but the nonce's freshness (which needs the database), for a body in
/// hand.
pub fn check(
    headers: &http::HeaderMap,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    services: &std::collections::BTreeMap<String, ServiceSettings>,
    now: i64,
) -> Result<VerifiedService, Rejection> {
    check_headers(headers, services, now)?.verify(
        method,
        path_and_query,
        signing::body_sha256(body),
    )
}

/// Records a nonce; `false` when it was seen before (a replay).
pub async fn consume_nonce(db: &sqlx::PgPool, service: &str, nonce: &str) -> anyhow::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO service_nonces (service, nonce, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))
         ON CONFLICT DO NOTHING",
    )
    .bind(service)
    .bind(nonce)
    .bind((signing::MAX_SKEW_SECS * 2 + 60) as f64)
    .execute(db)
    .await
    .context("failed to record a service nonce")?;
    Ok(result.rows_affected() == 1)
}

/// The most a signed call to `path` may carry.
pub fn body_limit(path: &str, documents: &crate::config::DocumentSettings) -> usize {
    if path == UPLOAD_PATH {
        // An upload carries its file plus a little multipart framing.
        let upload = documents.max_upload_bytes() + 64 * 1024;
        usize::try_from(upload).unwrap_or(usize::MAX)
    } else {
        MAX_SIGNED_CALL_BODY
    }
}

/// Why a body could not be read in full.
enum BodyError {
    TooLarge,
    Broken,
}

/// Reads `body` up to `limit` bytes, hashing as it goes; stops at the first byte over.
async fn read_hashed(body: Body, limit: usize) -> Result<(bytes::Bytes, [u8; 32]), BodyError> {
    let mut stream = body.into_data_stream();
    let mut hasher = Sha256::new();
    let mut kept = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if kept.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        hasher.update(&chunk);
        kept.extend_from_slice(&chunk);
    }
    Ok((kept.freeze(), hasher.finalize().into()))
}

fn rejected(rejection: &Rejection, path: &str) -> Response {
    tracing::warn!(%rejection, path, "signed call rejected");
    ApiError::Unauthenticated.into_response()
}

/// The middleware. Requests without the service header pass untouched.
pub async fn verify_service_calls(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !request.headers().contains_key(signing::HEADER_SERVICE) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claimed = match check_headers(&parts.headers, &state.settings.services, now) {
        Ok(claimed) => claimed,
        Err(rejection) => return rejected(&rejection, parts.uri.path()),
    };
    let limit = body_limit(parts.uri.path(), &state.settings.documents);
    let too_large = || {
        if parts.uri.path() == UPLOAD_PATH {
            ApiError::TooLarge {
                max_mb: state.settings.documents.max_upload_mb,
            }
        } else {
            ApiError::Request {
                message: format!("a signed call carries at most {MAX_SIGNED_CALL_BODY} bytes"),
            }
        }
        .into_response()
    };
    // A declared length over the limit is refused without reading a byte.
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large();
    }
    let (bytes, digest) = match read_hashed(body, limit).await {
        Ok(read) => read,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Broken) => {
            return ApiError::Request {
                message: "the request body was cut off".into(),
            }
            .into_response();
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let verified = match claimed.verify(parts.method.as_str(), &path_and_query, digest) {
        Ok(verified) => verified,
        Err(rejection) => return rejected(&rejection, parts.uri.path()),
    };
    let nonce = claimed.nonce.to_owned();
    match consume_nonce(&state.db, &verified.name, &nonce).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(rejection = %Rejection::Replay, service = %verified.name, "signed call rejected");
            return ApiError::Unauthenticated.into_response();
        }
        Err(error) => return internal(error).into_response(),
    }
    parts.extensions.insert(verified);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::collections::BTreeMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    fn services() -> BTreeMap<String, ServiceSettings> {
        BTreeMap::from([(
            "bot".to_owned(),
            ServiceSettings {
                secret: SecretString::from(SECRET),
                permissions: vec!["rag:query".into()],
            },
        )])
    }

    fn signed_headers(
        service: &str,
        ts: i64,
        acting: &str,
        body: &[u8],
        secret: &str,
    ) -> http::HeaderMap {
        let nonce = "nonce-0123456789abcdef";
        let signature = SignedParts {
            service,
            timestamp: ts,
            nonce,
            method: "POST",
            path_and_query: "/api/rag/ask",
            acting_user: acting,
            content_type: "application/json",
            body_sha256: signing::body_sha256(body),
        }
        .sign(secret.as_bytes());
        let mut h = http::HeaderMap::new();
        h.insert(signing::HEADER_SERVICE, service.parse().expect("h"));
        h.insert(
            signing::HEADER_TIMESTAMP,
            ts.to_string().parse().expect("h"),
        );
        h.insert(signing::HEADER_NONCE, nonce.parse().expect("h"));
        h.insert(signing::HEADER_ACTING_USER, acting.parse().expect("h"));
        h.insert(signing::HEADER_SIGNATURE, signature.parse().expect("h"));
        h.insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().expect("h"),
        );
        h
    }

    fn run(headers: &http::HeaderMap, body: &[u8]) -> Result<VerifiedService, Rejection> {
        check(headers, "POST", "/api/rag/ask", body, &services(), NOW)
    }

    #[test]
    fn a_well_signed_call_is_verified_with_its_acting_user() {
        let verified = run(&signed_headers("bot", NOW, "tg:42", b"{}", SECRET), b"{}").expect("ok");
        assert_eq!(verified.acting_telegram_user, Some(42));
        assert!(verified.may(super::super::principal::Permission::RagQuery));
        assert!(!verified.may(super::super::principal::Permission::DocumentsUpload));
    }

    #[test]
    fn skew_in_either_direction_is_rejected() {
        for ts in [NOW - 301, NOW + 301] {
            assert_eq!(
                run(&signed_headers("bot", ts, "tg:42", b"{}", SECRET), b"{}").err(),
                Some(Rejection::Stale)
            );
        }
        assert!(
            run(
                &signed_headers("bot", NOW - 300, "tg:42", b"{}", SECRET),
                b"{}"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_wrong_body_user_secret_or_service_is_rejected() {
        let h = signed_headers("bot", NOW, "tg:42", b"{}", SECRET);
        assert_eq!(
            run(&h, b"{\"q\":1}").err(),
            Some(Rejection::BadSignature),
            "body"
        );
        let mut other_user = h.clone();
        other_user.insert(signing::HEADER_ACTING_USER, "tg:43".parse().expect("h"));
        assert_eq!(
            run(&other_user, b"{}").err(),
            Some(Rejection::BadSignature),
            "user"
        );
        let wrong_secret = signed_headers(
            "bot",
            NOW,
            "tg:42",
            b"{}",
            "another-secret-another-secret-xx",
        );
        assert_eq!(
            run(&wrong_secret, b"{}").err(),
            Some(Rejection::BadSignature),
            "secret"
        );
        let unknown = signed_headers("crawler", NOW, "tg:42", b"{}", SECRET);
        assert_eq!(
            run(&unknown, b"{}").err(),
            Some(Rejection::UnknownService),
            "service"
        );
        let bad_user = signed_headers("bot", NOW, "42", b"{}", SECRET);
        assert_eq!(run(&bad_user, b"{}").err(), Some(Rejection::BadActingUser));
        let mut other_type = h.clone();
        other_type.insert(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().expect("h"),
        );
        assert_eq!(
            run(&other_type, b"{}").err(),
            Some(Rejection::BadSignature),
            "content type"
        );
        let mut no_sig = h.clone();
        no_sig.remove(signing::HEADER_SIGNATURE);
        assert!(matches!(
            run(&no_sig, b"{}"),
            Err(Rejection::MissingHeader(_))
        ));
    }
}
