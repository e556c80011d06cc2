//! One-time links: a random 256-bit token that lets its holder do one thing for one person
//! outside that person's session (set up a passkey in the system browser, download an
//! export). Only the token's SHA-256 is stored; a link expires and works once.

use std::time::Duration;

use anyhow::Context;
use uuid::Uuid;

use super::sessions::{new_token, token_hash};
use crate::error::ApiError;
use crate::state::internal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasskeySetup,
    Export,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::PasskeySetup => "passkey_setup",
            Self::Export => "export",
        }
    }
}

/// How long a link works.
pub const LIFETIME: Duration = Duration::from_secs(600);
/// At most this many live links of one purpose per person.
const MAX_LIVE: i64 = 5;

/// Creates a link for `user_id`; returns its id and the token (shown once, never stored).
pub async fn create(
    db: &sqlx::PgPool,
    user_id: Uuid,
    purpose: Purpose,
) -> Result<(Uuid, String), ApiError> {
    let live: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM one_time_links
          WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .fetch_one(db)
    .await
    .context("failed to count one-time links")
    .map_err(internal)?;
    if live.0 >= MAX_LIVE {
        return Err(ApiError::RateLimited {
            retry_after_secs: LIFETIME.as_secs(),
        });
    }
    // Expired links are of no use to anyone: drop them as new ones are made.
    sqlx::query("DELETE FROM one_time_links WHERE expires_at < now() - interval '1 day'")
        .execute(db)
        .await
        .context("failed to drop old one-time links")
        .map_err(internal)?;
    let id = Uuid::new_v4();
    let token = new_token();
    sqlx::query(
        "INSERT INTO one_time_links (id, token_hash, user_id, purpose, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(id)
    .bind(token_hash(&token))
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(LIFETIME.as_secs_f64())
    .execute(db)
    .await
    .context("failed to create a one-time link")
    .map_err(internal)?;
    Ok((id, token))
}

/// The unused, unexpired link behind `token` (id, person), without using it.
pub async fn peek(
    db: &sqlx::PgPool,
    token: &str,
    purpose: Purpose,
) -> Result<Option<(Uuid, Uuid)>, ApiError> {
    if token.len() != 43 {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT id, user_id FROM one_time_links
          WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()",
    )
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .fetch_optional(db)
    .await
    .context("failed to read a one-time link")
    .map_err(internal)
}

/// Uses the link behind `token`: of two concurrent callers exactly one gets `Some`.
pub async fn take(
    db: &sqlx::PgPool,
    token: &str,
    purpose: Purpose,
) -> Result<Option<(Uuid, Uuid)>, ApiError> {
    if token.len() != 43 {
        return Ok(None);
    }
    sqlx::query_as(
        "UPDATE one_time_links SET used_at = now()
          WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
          RETURNING id, user_id",
    )
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .fetch_optional(db)
    .await
    .context("failed to use a one-time link")
    .map_err(internal)
}
