//! Sessions: a random 256-bit token goes to the client; only its SHA-256 is stored.

use anyhow::Context;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::internal;

pub const COOKIE_NAME: &str = "dossier_session";
pub use crate::client::SESSION_HEADER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Web,
    MiniApp,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::MiniApp => "miniapp",
        }
    }
}

/// A new random token (URL-safe base64, 43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a session and returns its token.
pub async fn create(
    db: &sqlx::PgPool,
    user_id: Uuid,
    kind: SessionKind,
    lifetime: std::time::Duration,
    sliding: bool,
) -> Result<String, ApiError> {
    let token = new_token();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, kind, expires_at, sliding)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)",
    )
    .bind(token_hash(&token))
    .bind(user_id)
    .bind(kind.as_str())
    .bind(lifetime.as_secs_f64())
    .bind(sliding)
    .execute(db)
    .await
    .context("failed to create a session")
    .map_err(internal)?;
    Ok(token)
}

/// Finds a live session by token, sliding its expiry when it slides. `idle` is the web idle
/// timeout. Expired or unknown tokens give `None`.
pub async fn resolve(
    db: &sqlx::PgPool,
    token: &str,
    idle: std::time::Duration,
) -> Result<Option<(Uuid, SessionKind)>, ApiError> {
    if token.len() != 43 {
        return Ok(None);
    }
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "UPDATE sessions SET
           last_seen_at = now(),
           expires_at = CASE WHEN sliding THEN now() + make_interval(secs => $2) ELSE expires_at END
         WHERE token_hash = $1 AND expires_at > now()
         RETURNING user_id, kind",
    )
    .bind(token_hash(token))
    .bind(idle.as_secs_f64())
    .fetch_optional(db)
    .await
    .context("failed to look up a session")
    .map_err(internal)?;
    Ok(row.map(|(user_id, kind)| {
        let kind = if kind == "miniapp" {
            SessionKind::MiniApp
        } else {
            SessionKind::Web
        };
        (user_id, kind)
    }))
}

pub async fn delete(db: &sqlx::PgPool, token: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(db)
        .await
        .context("failed to delete a session")
        .map_err(internal)?;
    Ok(())
}

/// The `Set-Cookie` value for a web session. `Secure` whenever the public URL is HTTPS.
pub fn cookie(token: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(secure: bool) -> String {
    cookie("", 0, secure)
}

/// The session token from a `Cookie` header, if any.
pub fn token_from_cookies(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn cookies_carry_the_security_flags() {
        let c = cookie("tok", 60, true);
        for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=60"] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(!cookie("tok", 60, false).contains("Secure"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=1; dossier_session=abc; b=2".parse().expect("header"),
        );
        assert_eq!(token_from_cookies(&headers).as_deref(), Some("abc"));
        headers.insert(
            http::header::COOKIE,
            "dossier_session=".parse().expect("header"),
        );
        assert_eq!(token_from_cookies(&headers), None);
    }
}
