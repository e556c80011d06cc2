//! Notifications for people in Telegram: what the API publishes on
//! `{env}.notifications.telegram` and the bot's worker sends, and the claim that makes a
//! redelivered notification go out once.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;
use uuid::Uuid;

use crate::documents::classify::DocType;
use crate::error::ApiError;

/// One message for one chat. `id` is unique per event (a document's completion has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelegramNotification {
    pub id: String,
    pub chat_id: i64,
    pub language_code: Option<String>,
    pub event: NotificationEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotificationEvent {
    /// Every stage finished.
    DocumentProcessed {
        document_id: Uuid,
        file_name: String,
        doc_type: DocType,
        /// A few short summaries ("total 120.00 EUR", "due 2026-12-01").
        key_fields: Vec<String>,
        pages: u32,
    },
    /// The document could not be processed (or is of a kind Dossier does not read).
    DocumentFailed {
        document_id: Uuid,
        file_name: String,
        reason: String,
    },
}

/// The notification events a person can switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationPreferences {
    pub processed: bool,
    pub failed: bool,
}

impl Default for NotificationPreferences {
    fn default() -> Self {
        Self {
            processed: true,
            failed: true,
        }
    }
}

/// What a claim of notification ids answers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NotificationClaims {
    /// Send these now: new ones, and ones an earlier attempt did not finish.
    pub claimed: Vec<String>,
    /// Sent before (a redelivery): only acknowledge them.
    pub done: Vec<String>,
}

/// Claims notification ids before sending, for `holder` (one bot process). An id claimed
/// before and not finished is claimed again: the stream redelivers a message only after its
/// acknowledgement deadline, which the bot's bounded send always beats, so the earlier
/// attempt was cut short. Service-only (`telegram:updates`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/notifications/claim", input = Json)]
pub async fn claim_notifications(
    ids: Vec<String>,
    holder: String,
) -> Result<NotificationClaims, ApiError> {
    crate::error::respond(
        async {
            use anyhow::Context;

            use crate::auth::principal::{Permission, authorize_service};
            authorize_service(Permission::TelegramUpdates)?;
            check_ids(&ids)?;
            if holder.is_empty() || holder.len() > crate::telegram::MAX_HOLDER_CHARS {
                return Err(ApiError::field("holder", "a holder is 1 to 100 characters"));
            }
            let state = crate::state::app_state()?;
            let claimed: Vec<(String,)> = sqlx::query_as(
                "INSERT INTO notification_claims (id, holder)
                 SELECT DISTINCT id, $2 FROM unnest($1::text[]) AS id
                 ON CONFLICT (id) DO UPDATE
                    SET holder = EXCLUDED.holder, claimed_at = now(),
                        attempts = notification_claims.attempts + 1
                  WHERE notification_claims.done_at IS NULL
                 RETURNING id",
            )
            .bind(&ids)
            .bind(&holder)
            .fetch_all(&state.db)
            .await
            .context("failed to claim notifications")
            .map_err(crate::state::internal)?;
            let claimed: std::collections::HashSet<String> =
                claimed.into_iter().map(|(id,)| id).collect();
            let mut answer = NotificationClaims::default();
            for id in ids {
                if claimed.contains(&id) {
                    if !answer.claimed.contains(&id) {
                        answer.claimed.push(id);
                    }
                } else if !answer.done.contains(&id) {
                    answer.done.push(id);
                }
            }
            Ok(answer)
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
fn check_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > 100 || ids.iter().any(|id| id.is_empty() || id.len() > 100) {
        return Err(ApiError::validation(
            "claim at most 100 ids of at most 100 characters",
        ));
    }
    Ok(())
}

/// Marks notifications sent. Service-only (`telegram:updates`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/notifications/done", input = Json)]
pub async fn finish_notifications(ids: Vec<String>) -> Result<(), ApiError> {
    crate::error::respond(
        async {
            use anyhow::Context;

            use crate::auth::principal::{Permission, authorize_service};
            authorize_service(Permission::TelegramUpdates)?;
            check_ids(&ids)?;
            let state = crate::state::app_state()?;
            sqlx::query(
                "UPDATE notification_claims SET done_at = now()
                  WHERE id = ANY($1) AND done_at IS NULL",
            )
            .bind(&ids)
            .execute(&state.db)
            .await
            .context("failed to finish notifications")
            .map_err(crate::state::internal)?;
            Ok(())
        }
        .await,
    )
}

/// The signed-in person's notification preferences.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "notifications/preferences")]
pub async fn get_notification_preferences() -> Result<NotificationPreferences, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize};
            let caller = authorize(Permission::UsersRead).await?;
            let state = crate::state::app_state()?;
            service::preferences(&state.db, caller.user_id).await
        }
        .await,
    )
}

/// Changes the signed-in person's notification preferences.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "notifications/preferences/set", input = Json)]
pub async fn set_notification_preferences(
    preferences: NotificationPreferences,
) -> Result<NotificationPreferences, ApiError> {
    crate::error::respond(
        async {
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            let state = crate::state::app_state()?;
            service::set_preferences(&state.db, caller.user_id, preferences).await
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
pub mod service {
    use anyhow::Context;
    use uuid::Uuid;

    use super::NotificationPreferences;
    use crate::error::ApiError;
    use crate::state::internal;

    pub async fn preferences(
        db: &sqlx::PgPool,
        user_id: Uuid,
    ) -> Result<NotificationPreferences, ApiError> {
        let row: Option<(bool, bool)> = sqlx::query_as(
            "SELECT processed, failed FROM notification_preferences WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(db)
        .await
        .context("failed to read notification preferences")
        .map_err(internal)?;
        Ok(
            row.map_or_else(NotificationPreferences::default, |(processed, failed)| {
                NotificationPreferences { processed, failed }
            }),
        )
    }

    pub async fn set_preferences(
        db: &sqlx::PgPool,
        user_id: Uuid,
        preferences: NotificationPreferences,
    ) -> Result<NotificationPreferences, ApiError> {
        sqlx::query(
            "INSERT INTO notification_preferences (user_id, processed, failed)
             VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET processed = EXCLUDED.processed,
               failed = EXCLUDED.failed, updated_at = now()",
        )
        .bind(user_id)
        .bind(preferences.processed)
        .bind(preferences.failed)
        .execute(db)
        .await
        .context("failed to store notification preferences")
        .map_err(internal)?;
        Ok(preferences)
    }
}
