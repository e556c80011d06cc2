//! Fixed-window rate limits kept in PostgreSQL, so every server replica shares them.

use std::time::Duration;

use anyhow::Context;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_hits: i32,
    pub window: Duration,
}

pub const SIGN_IN_PER_IP: Limit = Limit {
    max_hits: 20,
    window: Duration::from_secs(600),
};
pub const SIGN_IN_PER_ACCOUNT: Limit = Limit {
    max_hits: 8,
    window: Duration::from_secs(600),
};
pub const SIGN_UP_PER_IP: Limit = Limit {
    max_hits: 10,
    window: Duration::from_secs(3600),
};

/// Counts one hit against `key`; `Err(RateLimited)` once the window's budget is spent.
pub async fn hit(db: &sqlx::PgPool, key: &str, limit: Limit) -> Result<(), ApiError> {
    let window_secs = limit.window.as_secs_f64();
    let (hits, retry_after): (i32, f64) = sqlx::query_as(
        "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, now(), 1)
         ON CONFLICT (key) DO UPDATE SET
           hits = CASE WHEN rate_limits.window_start <= now() - make_interval(secs => $2)
                       THEN 1 ELSE rate_limits.hits + 1 END,
           window_start = CASE WHEN rate_limits.window_start <= now() - make_interval(secs => $2)
                       THEN now() ELSE rate_limits.window_start END
         RETURNING hits,
           EXTRACT(EPOCH FROM (window_start + make_interval(secs => $2) - now()))::float8",
    )
    .bind(key)
    .bind(window_secs)
    .fetch_one(db)
    .await
    .context("failed to count a rate-limited attempt")
    .map_err(crate::state::internal)?;
    if hits > limit.max_hits {
        return Err(ApiError::RateLimited {
            retry_after_secs: retry_after.ceil().max(1.0) as u64,
        });
    }
    Ok(())
}

/// Forgets the hits on `key` (after a successful sign-in, the account's counter resets).
pub async fn reset(db: &sqlx::PgPool, key: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM rate_limits WHERE key = $1")
        .bind(key)
        .execute(db)
        .await
        .context("failed to reset a rate limit")
        .map_err(crate::state::internal)?;
    Ok(())
}
