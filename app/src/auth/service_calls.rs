//! Verification of signed service calls, as axum middleware in front of the server functions.
//! A request that names a service is buffered (bounded), its signature checked in constant
//! time, its timestamp and nonce checked, and only then handed on with a `VerifiedService`.

use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::principal::VerifiedService;
use super::signing::{self, SignedParts};
use crate::config::ServiceSettings;
use crate::error::ApiError;
use crate::state::{AppState, internal};

/// Largest body a signed call may carry, unless uploads are allowed to be larger.
pub const MAX_SIGNED_BODY: usize = 64 * 1024 * 1024;

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
    #[error("signature mismatch")]
    BadSignature,
    #[error("nonce already used")]
    Replay,
}

/// Checks everything but the nonce's freshness (which needs the database).
pub fn check(
    headers: &http::HeaderMap,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    services: &std::collections::BTreeMap<String, ServiceSettings>,
    now: i64,
) -> Result<VerifiedService, Rejection> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or(Rejection::MissingHeader(name))
    };
    let name = header(signing::HEADER_SERVICE)?;
    let service = services.get(name).ok_or(Rejection::UnknownService)?;
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
    let signature = header(signing::HEADER_SIGNATURE)?;
    let parts = SignedParts {
        service: name,
        timestamp,
        nonce,
        method,
        path_and_query,
        acting_user,
        body,
    };
    if !parts.verify(service.secret.expose_secret().as_bytes(), signature) {
        return Err(Rejection::BadSignature);
    }
    Ok(VerifiedService {
        name: name.to_owned(),
        permissions: Arc::from(service.permissions.clone()),
        acting_telegram_user,
    })
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
    // An upload carries its file plus a little multipart framing.
    let upload_limit = state.settings.documents.max_upload_bytes() + 1024 * 1024;
    let limit = MAX_SIGNED_BODY.max(usize::try_from(upload_limit).unwrap_or(usize::MAX));
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return ApiError::TooLarge {
            max_mb: state.settings.documents.max_upload_mb,
        }
        .into_response();
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verified = match check(
        &parts.headers,
        parts.method.as_str(),
        &path_and_query,
        &bytes,
        &state.settings.services,
        now,
    ) {
        Ok(verified) => verified,
        Err(rejection) => {
            tracing::warn!(%rejection, path = %parts.uri.path(), "signed call rejected");
            return ApiError::Unauthenticated.into_response();
        }
    };
    let nonce = parts
        .headers
        .get(signing::HEADER_NONCE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
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
            body,
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
        let mut no_sig = h.clone();
        no_sig.remove(signing::HEADER_SIGNATURE);
        assert!(matches!(
            run(&no_sig, b"{}"),
            Err(Rejection::MissingHeader(_))
        ));
    }
}
