//! What the bot asks of the API about Telegram itself: who a Telegram user is (and recording
//! them and their chat), and claiming update ids so a restarted bot handles none twice.
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

/// Claims update ids for handling: returns those never claimed before (in the given order).
/// Service-only (`telegram:updates`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/updates/claim", input = Json)]
pub async fn claim_updates(update_ids: Vec<i64>) -> Result<Vec<i64>, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            authorize_service(Permission::TelegramUpdates)?;
            if update_ids.len() > 1000 {
                return Err(ApiError::validation("claim at most 1000 updates at once"));
            }
            let state = crate::state::app_state()?;
            service::claim_updates(&state.db, &update_ids).await
        }
        .await,
    )
}
