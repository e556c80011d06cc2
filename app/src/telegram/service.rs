//! Service code behind the Telegram server functions.

use anyhow::Context;

use super::{TelegramProfile, TelegramStatus};
use crate::error::ApiError;
use crate::state::internal;

/// Longest names stored (Telegram allows 64 characters; anything longer is not from Telegram).
const MAX_NAME_CHARS: usize = 64;

fn clip(value: &str) -> String {
    value.chars().take(MAX_NAME_CHARS).collect()
}

pub async fn hello(
    db: &sqlx::PgPool,
    telegram_user_id: i64,
    profile: &TelegramProfile,
) -> Result<TelegramStatus, ApiError> {
    let language = profile
        .language_code
        .as_deref()
        .map(|code| code.chars().take(8).collect::<String>());
    let row: (Option<String>, Option<String>) = sqlx::query_as(
        "WITH tg AS (
           INSERT INTO telegram_accounts
             (telegram_user_id, chat_id, username, first_name, last_name, language_code)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (telegram_user_id) DO UPDATE SET
             chat_id = EXCLUDED.chat_id, username = EXCLUDED.username,
             first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
             language_code = EXCLUDED.language_code, last_seen_at = now()
           RETURNING user_id
         )
         SELECT u.email, u.language FROM tg LEFT JOIN users u ON u.id = tg.user_id",
    )
    .bind(telegram_user_id)
    .bind(profile.chat_id)
    .bind(profile.username.as_deref().map(clip))
    .bind(clip(&profile.first_name))
    .bind(profile.last_name.as_deref().map(clip))
    .bind(language)
    .fetch_one(db)
    .await
    .context("failed to record a Telegram user")
    .map_err(internal)?;
    Ok(TelegramStatus {
        linked: row.0.is_some(),
        email: row.0,
        language: row.1,
    })
}

pub async fn claim_updates(db: &sqlx::PgPool, update_ids: &[i64]) -> Result<Vec<i64>, ApiError> {
    if update_ids.is_empty() {
        return Ok(Vec::new());
    }
    let claimed: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO telegram_updates (update_id) SELECT * FROM unnest($1::bigint[])
         ON CONFLICT DO NOTHING RETURNING update_id",
    )
    .bind(update_ids)
    .fetch_all(db)
    .await
    .context("failed to claim update ids")
    .map_err(internal)?;
    let claimed: std::collections::HashSet<i64> = claimed.into_iter().map(|(id,)| id).collect();
    Ok(update_ids
        .iter()
        .copied()
        .filter(|id| claimed.contains(id))
        .collect())
}
