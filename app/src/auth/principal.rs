//! The one helper every server function calls to learn who is calling and what they may do.
//!
//! A caller is one of: a web session (cookie, CSRF-checked), a Mini App or header-carried
//! session (`X-Dossier-Session`, immune to CSRF because a cross-site page cannot set it), or a
//! signed service (verified by `service_calls::verify_service_calls` before the function runs)
//! acting for a Telegram user. Services need the permission **and** a linked acting user.

use std::sync::Arc;

use anyhow::Context;
use http::request::Parts;
use leptos::prelude::*;
use uuid::Uuid;

use super::sessions::{self, SESSION_HEADER, SessionKind};
use crate::error::ApiError;
use crate::state::{AppState, app_state, internal};

/// What a service may do, as named in its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    UsersRead,
    TelegramLink,
    DocumentsUpload,
    DocumentsRead,
    RagQuery,
    /// The bot's own bookkeeping (claiming update ids).
    TelegramUpdates,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users:read",
            Self::TelegramLink => "telegram:link",
            Self::DocumentsUpload => "documents:upload",
            Self::DocumentsRead => "documents:read",
            Self::RagQuery => "rag:query",
            Self::TelegramUpdates => "telegram:updates",
        }
    }
}

/// A service whose request signature the middleware verified.
#[derive(Debug, Clone)]
pub struct VerifiedService {
    pub name: String,
    pub permissions: Arc<[String]>,
    pub acting_telegram_user: Option<i64>,
}

impl VerifiedService {
    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.iter().any(|p| p == permission.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Web,
    MiniApp,
    Service { name: String, telegram_user_id: i64 },
}

/// An authorised caller acting for one user; every query filters by `user_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Uuid,
    pub via: Via,
}

/// Authorises the current server-function call for `permission`.
pub async fn authorize(permission: Permission) -> Result<Caller, ApiError> {
    let state = app_state()?;
    let parts = request_parts()?;
    authorize_parts(&state, &parts, permission).await
}

/// Like `authorize`, but a caller without a session gets `None` instead of an error.
pub async fn optional_caller() -> Result<Option<Caller>, ApiError> {
    match authorize(Permission::UsersRead).await {
        Ok(caller) => Ok(Some(caller)),
        Err(ApiError::Unauthenticated) => Ok(None),
        Err(error) => Err(error),
    }
}

/// For calls only a service may make (e.g. consuming a link token for a Telegram user who
/// has no account yet): the verified service, if it holds `permission`.
pub fn authorize_service(permission: Permission) -> Result<VerifiedService, ApiError> {
    let parts = request_parts()?;
    let service = parts
        .extensions
        .get::<VerifiedService>()
        .cloned()
        .ok_or(ApiError::Unauthenticated)?;
    if !service.may(permission) {
        return Err(ApiError::Forbidden);
    }
    Ok(service)
}

pub fn request_parts() -> Result<Parts, ApiError> {
    use_context::<Parts>()
        .ok_or_else(|| internal(anyhow::anyhow!("request parts missing from context")))
}

pub async fn authorize_parts(
    state: &AppState,
    parts: &Parts,
    permission: Permission,
) -> Result<Caller, ApiError> {
    if let Some(service) = parts.extensions.get::<VerifiedService>() {
        if !service.may(permission) {
            return Err(ApiError::Forbidden);
        }
        let telegram_user_id = service.acting_telegram_user.ok_or(ApiError::Forbidden)?;
        let user_id = linked_user(&state.db, telegram_user_id)
            .await?
            .ok_or(ApiError::TelegramNotLinked)?;
        return Ok(Caller {
            user_id,
            via: Via::Service {
                name: service.name.clone(),
                telegram_user_id,
            },
        });
    }
    if parts.headers.contains_key(super::signing::HEADER_SERVICE) {
        // Signed headers without a verified signature: the middleware did not run or failed.
        return Err(ApiError::Unauthenticated);
    }
    let idle = state.settings.web_session_idle();
    if let Some(token) = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
    {
        let (user_id, kind) = sessions::resolve(&state.db, token, idle)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        let via = match kind {
            SessionKind::MiniApp => Via::MiniApp,
            SessionKind::Web => Via::Web,
        };
        return Ok(Caller { user_id, via });
    }
    if let Some(token) = sessions::token_from_cookies(&parts.headers) {
        if !matches!(parts.method, http::Method::GET | http::Method::HEAD) {
            check_origin(&parts.headers, &state.settings.public_url)?;
        }
        let (user_id, _) = sessions::resolve(&state.db, &token, idle)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        return Ok(Caller {
            user_id,
            via: Via::Web,
        });
    }
    Err(ApiError::Unauthenticated)
}

/// CSRF defence for cookie-carried calls: the browser-set `Origin` must be our public origin;
/// without `Origin`, `Sec-Fetch-Site` must say same-origin (or a user-typed navigation).
pub fn check_origin(headers: &http::HeaderMap, public_url: &str) -> Result<(), ApiError> {
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| ApiError::CsrfRejected)?;
        return if origin.eq_ignore_ascii_case(public_url) {
            Ok(())
        } else {
            Err(ApiError::CsrfRejected)
        };
    }
    match headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
    {
        Some("same-origin" | "none") => Ok(()),
        _ => Err(ApiError::CsrfRejected),
    }
}

/// The account linked to a Telegram user, if any.
pub async fn linked_user(
    db: &sqlx::PgPool,
    telegram_user_id: i64,
) -> Result<Option<Uuid>, ApiError> {
    let row: Option<(Option<Uuid>,)> =
        sqlx::query_as("SELECT user_id FROM telegram_accounts WHERE telegram_user_id = $1")
            .bind(telegram_user_id)
            .fetch_optional(db)
            .await
            .context("failed to look up a Telegram account")
            .map_err(internal)?;
    Ok(row.and_then(|(user_id,)| user_id))
}

/// The client's address, for rate limits. With no trusted proxy (`trusted_proxies` 0) it is
/// the connection's peer and `X-Forwarded-For` is ignored. Behind `n` proxies, each of which
/// appends the address it received the request from, it is the `n`-th `X-Forwarded-For` entry
/// counted from the right: the one the outermost proxy wrote. Entries to its left were written
/// by the client and choose nothing. A header shorter than `n` (a request that bypassed a
/// proxy) falls back to the peer.
pub fn client_ip(parts: &Parts, trusted_proxies: usize) -> String {
    let peer = || {
        parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    if trusted_proxies == 0 {
        return peer();
    }
    // Several headers are one list, in order (RFC 9110 §5.3).
    let hops: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    match hops.len().checked_sub(trusted_proxies).map(|at| hops[at]) {
        Some(hop) if hop.parse::<std::net::IpAddr>().is_ok() => hop.to_owned(),
        _ => peer(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header"));
        }
        map
    }

    fn forwarded(values: &[&str]) -> Parts {
        let mut request = http::Request::builder();
        for value in values {
            request = request.header("x-forwarded-for", *value);
        }
        let (mut parts, ()) = request.body(()).expect("request").into_parts();
        parts
            .extensions
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [10, 0, 0, 9],
                443,
            ))));
        parts
    }

    #[test]
    fn the_client_address_is_the_hop_the_outermost_trusted_proxy_wrote() {
        // No proxy trusted: the header is the client's to write and is ignored.
        assert_eq!(client_ip(&forwarded(&["203.0.113.7"]), 0), "10.0.0.9");
        // One proxy: it appended what it saw; what the client put before that is ignored.
        assert_eq!(client_ip(&forwarded(&["203.0.113.7"]), 1), "203.0.113.7");
        assert_eq!(
            client_ip(&forwarded(&["1.2.3.4, 203.0.113.7"]), 1),
            "203.0.113.7"
        );
        assert_eq!(
            client_ip(&forwarded(&["1.2.3.4", "203.0.113.7"]), 1),
            "203.0.113.7",
            "two headers are one list"
        );
        // Two proxies (a CDN, then the ingress).
        assert_eq!(
            client_ip(&forwarded(&["6.6.6.6, 203.0.113.7, 198.51.100.2"]), 2),
            "203.0.113.7"
        );
        // Too few hops (the proxy was bypassed) or not an address: the peer.
        assert_eq!(client_ip(&forwarded(&["203.0.113.7"]), 2), "10.0.0.9");
        assert_eq!(client_ip(&forwarded(&[]), 1), "10.0.0.9");
        assert_eq!(client_ip(&forwarded(&["1.2.3.4, evil"]), 1), "10.0.0.9");
    }

    #[test]
    fn same_origin_calls_pass_and_cross_site_calls_are_rejected() {
        let public = "https://dossier.example";
        assert!(check_origin(&headers(&[("origin", "https://dossier.example")]), public).is_ok());
        assert!(check_origin(&headers(&[("sec-fetch-site", "same-origin")]), public).is_ok());
        for bad in [
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "https://dossier.example.evil")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[]),
        ] {
            assert_eq!(
                check_origin(&bad, public),
                Err(ApiError::CsrfRejected),
                "{bad:?}"
            );
        }
    }
}
