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

/// Claims notification ids before sending: answers those never claimed before, so a
/// notification redelivered after a bot restart is not sent again. Service-only
/// (`telegram:updates`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/notifications/claim", input = Json)]
pub async fn claim_notifications(ids: Vec<String>) -> Result<Vec<String>, ApiError> {
    crate::error::respond(
        async {
            use anyhow::Context;

            use crate::auth::principal::{Permission, authorize_service};
            authorize_service(Permission::TelegramUpdates)?;
            if ids.len() > 100 || ids.iter().any(|id| id.is_empty() || id.len() > 100) {
                return Err(ApiError::validation(
                    "claim at most 100 ids of at most 100 characters",
                ));
            }
            let state = crate::state::app_state()?;
            let claimed: Vec<(String,)> = sqlx::query_as(
                "INSERT INTO notification_claims (id) SELECT * FROM unnest($1::text[])
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&ids)
            .fetch_all(&state.db)
            .await
            .context("failed to claim notifications")
            .map_err(crate::state::internal)?;
            let claimed: std::collections::HashSet<String> =
                claimed.into_iter().map(|(id,)| id).collect();
            Ok(ids.into_iter().filter(|id| claimed.contains(id)).collect())
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
