//! Linking a Telegram chat to an account with a deep link: the settings page asks for a
//! one-time token (`t.me/<bot>?start=<token>`, 5 minutes, NATS KV `{env}-link-tokens`); the
//! bot hands it back on `/start <token>` and the link is made exactly once.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

use crate::error::ApiError;

/// How long a link token lives.
pub const TOKEN_TTL_SECS: u64 = 300;

/// A fresh deep link for the signed-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkToken {
    pub token: String,
    /// `https://t.me/<bot>?start=<token>`
    pub url: String,
    pub expires_in_secs: u64,
    /// The URL as a QR code (SVG), for linking from a phone.
    pub qr_svg: String,
}

/// The Telegram side of the signed-in person's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramLinkInfo {
    pub linked: bool,
    pub first_name: Option<String>,
    pub username: Option<String>,
}

/// Issues a one-time deep-link token (rate limited per account).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/link-token")]
pub async fn create_link_token() -> Result<LinkToken, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            service::create_token(&state, caller.user_id).await
        }
        .await,
    )
}

/// Whether the signed-in person's account is linked, and to whom.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/status")]
pub async fn link_status() -> Result<TelegramLinkInfo, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            service::status(&state.db, caller.user_id).await
        }
        .await,
    )
}

/// The bot hands back a token from `/start <token>`: links the acting Telegram user to the
/// token's account (once). Service-only (`telegram:link`); answers the account's email.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/link", input = Json)]
pub async fn consume_link_token(token: String) -> Result<String, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            let service = authorize_service(Permission::TelegramLink)?;
            let telegram_user_id = service.acting_telegram_user.ok_or(ApiError::Forbidden)?;
            let state = crate::state::app_state()?;
            service::consume_token(&state, telegram_user_id, &token).await
        }
        .await,
    )
}

/// Unlinks Telegram: from the web (the signed-in account) or from the bot (`/unlink`, the
/// acting Telegram user's account).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/unlink", input = Json)]
pub async fn unlink_telegram() -> Result<bool, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize};
            let caller = authorize(Permission::TelegramLink).await?;
            let state = crate::state::app_state()?;
            service::unlink(&state.db, caller.user_id).await
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
pub mod service {
    use std::time::Duration;

    use anyhow::Context;
    use async_nats::jetstream::kv;
    use base64::Engine;
    use rand::RngCore;
    use uuid::Uuid;

    use super::{LinkToken, TOKEN_TTL_SECS, TelegramLinkInfo};
    use crate::auth::{accounts, ratelimit};
    use crate::error::ApiError;
    use crate::state::{AppState, internal};

    pub const TOKENS_PER_ACCOUNT: ratelimit::Limit = ratelimit::Limit {
        max_hits: 10,
        window: Duration::from_secs(600),
    };

    /// The bucket, created on first use (idempotent, so every replica may try).
    pub async fn bucket(
        state: &AppState,
        name: String,
        ttl: Duration,
    ) -> Result<kv::Store, ApiError> {
        if let Ok(store) = state.jetstream.get_key_value(name.clone()).await {
            return Ok(store);
        }
        state
            .jetstream
            .create_or_update_key_value(kv::Config {
                bucket: name,
                history: 1,
                max_age: ttl,
                num_replicas: state.settings.nats_replicas,
                ..kv::Config::default()
            })
            .await
            .map_err(|error| {
                tracing::warn!(%error, "a NATS KV bucket is unavailable");
                ApiError::Unavailable
            })
    }

    async fn tokens(state: &AppState) -> Result<kv::Store, ApiError> {
        bucket(
            state,
            state.subjects.link_tokens_bucket(),
            Duration::from_secs(TOKEN_TTL_SECS),
        )
        .await
    }

    /// 256 random bits, URL-safe: 43 characters (Telegram allows 64 in `start`).
    fn new_token() -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn well_formed(token: &str) -> bool {
        token.len() == 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    pub fn qr_svg(url: &str) -> Result<String, ApiError> {
        let code = qrcode::QrCode::new(url.as_bytes())
            .context("failed to encode a QR code")
            .map_err(internal)?;
        Ok(code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build())
    }

    pub async fn create_token(state: &AppState, user_id: Uuid) -> Result<LinkToken, ApiError> {
        ratelimit::hit(
            &state.db,
            &format!("link-token:user:{user_id}"),
            TOKENS_PER_ACCOUNT,
        )
        .await?;
        let store = tokens(state).await?;
        let token = new_token();
        store
            .create(&token, user_id.to_string().into())
            .await
            .map_err(|error| {
                tracing::warn!(%error, "a link token could not be stored");
                ApiError::Unavailable
            })?;
        let url = format!(
            "https://t.me/{}?start={token}",
            state.settings.telegram_bot_username
        );
        Ok(LinkToken {
            qr_svg: qr_svg(&url)?,
            token,
            url,
            expires_in_secs: TOKEN_TTL_SECS,
        })
    }

    pub async fn status(db: &sqlx::PgPool, user_id: Uuid) -> Result<TelegramLinkInfo, ApiError> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT first_name, username FROM telegram_accounts WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(db)
                .await
                .context("failed to read the Telegram link")
                .map_err(internal)?;
        Ok(match row {
            Some((first_name, username)) => TelegramLinkInfo {
                linked: true,
                first_name: Some(first_name).filter(|name| !name.is_empty()),
                username,
            },
            None => TelegramLinkInfo {
                linked: false,
                first_name: None,
                username: None,
            },
        })
    }

    fn already_linked_chat() -> ApiError {
        ApiError::Conflict {
            message: "this Telegram account is already linked to another Dossier account; send /unlink first".into(),
        }
    }

    fn already_linked_account() -> ApiError {
        ApiError::Conflict {
            message: "that Dossier account is already linked to another Telegram account; unlink it on the settings page first".into(),
        }
    }

    pub async fn consume_token(
        state: &AppState,
        telegram_user_id: i64,
        token: &str,
    ) -> Result<String, ApiError> {
        if !well_formed(token) {
            return Err(ApiError::LinkExpired);
        }
        let store = tokens(state).await?;
        let entry = store
            .entry(token)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "a link token could not be read");
                ApiError::Unavailable
            })?
            .ok_or(ApiError::LinkExpired)?;
        if entry.operation != kv::Operation::Put {
            return Err(ApiError::LinkUsed);
        }
        let user_id: Uuid = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(ApiError::LinkExpired)?;
        // Refuse before spending the token when either side is linked elsewhere.
        let current: Option<(Option<Uuid>,)> =
            sqlx::query_as("SELECT user_id FROM telegram_accounts WHERE telegram_user_id = $1")
                .bind(telegram_user_id)
                .fetch_optional(&state.db)
                .await
                .context("failed to read a Telegram account")
                .map_err(internal)?;
        if let Some((Some(linked),)) = current
            && linked != user_id
        {
            return Err(already_linked_chat());
        }
        // Single use: only the consumer whose delete matches the read revision wins.
        store
            .delete_expect_revision(token, Some(entry.revision))
            .await
            .map_err(|_| ApiError::LinkUsed)?;
        link_accounts(state, telegram_user_id, user_id).await?;
        let account = accounts::find_user(&state.db, user_id)
            .await?
            .ok_or(ApiError::LinkExpired)?;
        tracing::info!(%user_id, "Telegram account linked");
        Ok(account.email)
    }

    /// Links `telegram_user_id` to `user_id`; a conflict on either side is refused.
    pub async fn link_accounts(
        state: &AppState,
        telegram_user_id: i64,
        user_id: Uuid,
    ) -> Result<(), ApiError> {
        let linked: Result<Option<(Uuid,)>, sqlx::Error> = sqlx::query_as(
            "INSERT INTO telegram_accounts (telegram_user_id, user_id, linked_at)
             VALUES ($1, $2, now())
             ON CONFLICT (telegram_user_id) DO UPDATE
               SET user_id = EXCLUDED.user_id, linked_at = now()
               WHERE telegram_accounts.user_id IS NULL
                  OR telegram_accounts.user_id = EXCLUDED.user_id
             RETURNING user_id",
        )
        .bind(telegram_user_id)
        .bind(user_id)
        .fetch_optional(&state.db)
        .await;
        match linked {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(already_linked_chat()),
            Err(error) if accounts::constraint(&error) == Some("telegram_accounts_user_id_key") => {
                Err(already_linked_account())
            }
            Err(error) => Err(internal(
                anyhow::Error::new(error).context("failed to link a Telegram account"),
            )),
        }
    }

    pub async fn unlink(db: &sqlx::PgPool, user_id: Uuid) -> Result<bool, ApiError> {
        let done = sqlx::query(
            "UPDATE telegram_accounts SET user_id = NULL, linked_at = NULL WHERE user_id = $1",
        )
        .bind(user_id)
        .execute(db)
        .await
        .context("failed to unlink Telegram")
        .map_err(internal)?;
        Ok(done.rows_affected() > 0)
    }
}
