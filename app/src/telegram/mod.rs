//! What the bot asks of the API about Telegram itself: who a Telegram user is (and recording
//! them and their chat), and claiming update ids so that no update is skipped or handled twice across restarts.
//! Only signed services call these.

pub mod link;
pub mod push;
#[cfg(feature = "ssr")]
pub mod service;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

use crate::error::ApiError;

/// A Telegram user as the bot sees them in an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramProfile {
    pub chat_id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

/// Whether the acting Telegram user is linked, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramStatus {
    pub linked: bool,
    /// The linked account's email, shown back to its owner in their own chat.
    pub email: Option<String>,
    /// The language the linked person chose in Dossier (`en`, `ru`); `None` follows Telegram.
    #[serde(default)]
    pub language: Option<String>,
}

/// Records the acting Telegram user (names, language, private chat) and says whether they are
/// linked. Service-only (`users:read`); the acting user comes from the signed headers.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/hello", input = Json)]
pub async fn telegram_hello(profile: TelegramProfile) -> Result<TelegramStatus, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            let service = authorize_service(Permission::UsersRead)?;
            let telegram_user_id = service.acting_telegram_user.ok_or(ApiError::Forbidden)?;
            let state = crate::state::app_state()?;
            service::hello(&state.db, telegram_user_id, &profile).await
        }
        .await,
    )
}

/// What a claim of update ids answers. Ids in neither list are being handled by another live
/// process right now: ask again later.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateClaims {
    /// Handle these now, in the order given: new ones, and ones a process that is gone left
    /// unfinished.
    pub claimed: Vec<ClaimedUpdate>,
    /// Handled before: skip them.
    pub done: Vec<i64>,
}

/// An update this process now holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedUpdate {
    pub update_id: i64,
    /// 1 for a new update; more when an earlier attempt was cut short.
    pub attempt: i32,
    /// The status message an earlier attempt sent about this update (edit it, do not send
    /// another).
    pub reply_message_id: Option<i32>,
}

/// Longest holder name (a bot process's id).
pub const MAX_HOLDER_CHARS: usize = 100;

#[cfg(feature = "ssr")]
fn check_holder(holder: &str) -> Result<(), ApiError> {
    if holder.is_empty()
        || holder.len() > MAX_HOLDER_CHARS
        || !holder
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::field(
            "holder",
            "a holder is 1 to 100 letters, digits, '-' or '_'",
        ));
    }
    Ok(())
}

/// A bot's id (its Telegram user id, the token's prefix): update ids are numbered per bot.
#[cfg(feature = "ssr")]
fn check_bot_id(bot_id: i64) -> Result<(), ApiError> {
    if bot_id <= 0 {
        return Err(ApiError::field("bot_id", "a bot id is a positive number"));
    }
    Ok(())
}

/// Claims update ids of bot `bot_id` for handling by `holder` (one bot process); update ids
/// are numbered per bot, so claims are too. New ids are claimed. An id
/// claimed before and never finished is taken over: with `takeover_after_secs` 0 at once (the
/// one polling process: whoever held it is gone, or it is asking again after a lost answer),
/// otherwise only once its claim is that old, whoever holds it (a webhook replica waits for a
/// slow peer, or for its own handler that Telegram gave up waiting for). Service-only
/// (`telegram:updates`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/updates/claim", input = Json)]
pub async fn claim_updates(
    bot_id: i64,
    update_ids: Vec<i64>,
    holder: String,
    takeover_after_secs: u32,
) -> Result<UpdateClaims, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            authorize_service(Permission::TelegramUpdates)?;
            if update_ids.len() > 1000 {
                return Err(ApiError::validation("claim at most 1000 updates at once"));
            }
            check_holder(&holder)?;
            check_bot_id(bot_id)?;
            let state = crate::state::app_state()?;
            service::claim_updates(
                &state.db,
                bot_id,
                &update_ids,
                &holder,
                takeover_after_secs.min(3600),
            )
            .await
        }
        .await,
    )
}

/// Marks updates handled, so no process handles them again. Service-only (`telegram:updates`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/updates/done", input = Json)]
pub async fn finish_updates(bot_id: i64, update_ids: Vec<i64>) -> Result<(), ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            authorize_service(Permission::TelegramUpdates)?;
            if update_ids.len() > 1000 {
                return Err(ApiError::validation("finish at most 1000 updates at once"));
            }
            check_bot_id(bot_id)?;
            let state = crate::state::app_state()?;
            service::finish_updates(&state.db, bot_id, &update_ids).await
        }
        .await,
    )
}

/// Records the status message sent about an update its holder is handling, so an attempt
/// after a crash edits that message instead of sending a second one. Service-only
/// (`telegram:updates`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/updates/reply", input = Json)]
pub async fn note_update_reply(
    bot_id: i64,
    update_id: i64,
    holder: String,
    message_id: i32,
) -> Result<(), ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            authorize_service(Permission::TelegramUpdates)?;
            check_holder(&holder)?;
            check_bot_id(bot_id)?;
            let state = crate::state::app_state()?;
            service::note_update_reply(&state.db, bot_id, update_id, &holder, message_id).await
        }
        .await,
    )
}
