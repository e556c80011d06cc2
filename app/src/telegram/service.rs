//! Service code behind the Telegram server functions.

use anyhow::Context;

use super::{ClaimedUpdate, TelegramProfile, TelegramStatus, UpdateClaims};
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
    // A username belongs to one Telegram user at a time: whoever showed it last. An older row
    // that still carries it (its owner renamed, someone else took the name) forgets it, so a
    // push request by username can only reach its current owner.
    let row: (Option<String>, Option<String>) = sqlx::query_as(
        "WITH moved AS (
           UPDATE telegram_accounts SET username = NULL
            WHERE $3::text IS NOT NULL AND lower(username) = lower($3)
              AND telegram_user_id <> $1
         ), tg AS (
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

/// See `super::claim_updates`. One statement: new ids are inserted, unfinished ids whose claim
/// is old enough are taken over (by any holder: the same replica may be asked again after it
/// could not finish one) (under the row lock the conflict takes), and
/// finished ones are reported as done.
pub async fn claim_updates(
    db: &sqlx::PgPool,
    bot_id: i64,
    update_ids: &[i64],
    holder: &str,
    takeover_after_secs: u32,
) -> Result<UpdateClaims, ApiError> {
    if update_ids.is_empty() {
        return Ok(UpdateClaims::default());
    }
    let claimed: Vec<(i64, i32, Option<i32>)> = sqlx::query_as(
        "INSERT INTO telegram_updates (bot_id, update_id, holder)
         SELECT DISTINCT $4::bigint, id, $2 FROM unnest($1::bigint[]) AS id
         ON CONFLICT (bot_id, update_id) DO UPDATE
            SET holder = EXCLUDED.holder, claimed_at = now(),
                attempts = telegram_updates.attempts + 1
          WHERE telegram_updates.done_at IS NULL
            AND ($3 = 0
                 OR telegram_updates.claimed_at <= now() - make_interval(secs => $3))
         RETURNING update_id, attempts, reply_message_id",
    )
    .bind(update_ids)
    .bind(holder)
    .bind(f64::from(takeover_after_secs))
    .bind(bot_id)
    .fetch_all(db)
    .await
    .context("failed to claim update ids")
    .map_err(internal)?;
    let done: Vec<(i64,)> = sqlx::query_as(
        "SELECT update_id FROM telegram_updates
          WHERE bot_id = $2 AND update_id = ANY($1) AND done_at IS NOT NULL",
    )
    .bind(update_ids)
    .bind(bot_id)
    .fetch_all(db)
    .await
    .context("failed to read finished updates")
    .map_err(internal)?;
    let mut claimed: std::collections::HashMap<i64, ClaimedUpdate> = claimed
        .into_iter()
        .map(|(update_id, attempt, reply_message_id)| {
            (
                update_id,
                ClaimedUpdate {
                    update_id,
                    attempt,
                    reply_message_id,
                },
            )
        })
        .collect();
    let done: std::collections::HashSet<i64> = done.into_iter().map(|(id,)| id).collect();
    let mut answer = UpdateClaims::default();
    for id in update_ids {
        if let Some(update) = claimed.remove(id) {
            answer.claimed.push(update);
        } else if done.contains(id) && !answer.done.contains(id) {
            answer.done.push(*id);
        }
    }
    Ok(answer)
}

pub async fn finish_updates(
    db: &sqlx::PgPool,
    bot_id: i64,
    update_ids: &[i64],
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE telegram_updates SET done_at = now()
          WHERE bot_id = $2 AND update_id = ANY($1) AND done_at IS NULL",
    )
    .bind(update_ids)
    .bind(bot_id)
    .execute(db)
    .await
    .context("failed to finish updates")
    .map_err(internal)?;
    Ok(())
}

/// Only the current holder of an unfinished update records its reply.
pub async fn note_update_reply(
    db: &sqlx::PgPool,
    bot_id: i64,
    update_id: i64,
    holder: &str,
    message_id: i32,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE telegram_updates SET reply_message_id = $3
          WHERE bot_id = $4 AND update_id = $1 AND holder = $2 AND done_at IS NULL",
    )
    .bind(update_id)
    .bind(holder)
    .bind(message_id)
    .bind(bot_id)
    .execute(db)
    .await
    .context("failed to record an update's reply")
    .map_err(internal)?;
    Ok(())
}
