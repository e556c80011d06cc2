//! Linking a Telegram chat to an account with a deep link: the settings page asks for a
//! one-time token (`t.me/<bot>?start=<token>`, 5 minutes, NATS KV `{env}-link-tokens`); the
//! bot hands it back on `/start <token>`, which only *claims* it: the Telegram user is shown
//! which account they would join and must press Approve (`telegram/link/confirm`) before
//! anything is linked, and the settings page shows who is confirming meanwhile. A link
//! someone else made can therefore never take over a stranger's chat with one tap.

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
    /// A Telegram user who opened one of this account's links and has not answered yet (or
    /// declined): shown on the settings page before anything is linked.
    #[serde(default)]
    pub pending: Option<PendingLink>,
}

/// Who opened a deep link, as the settings page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    pub first_name: String,
    pub username: Option<String>,
    /// They pressed Decline.
    pub declined: bool,
}

/// The outcome of Approve / Decline on a deep link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkOutcome {
    Linked,
    Declined,
}

/// What `telegram/link/confirm` answers: the outcome and the account's email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkConfirmed {
    pub outcome: LinkOutcome,
    pub email: String,
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
            service::status(&state, caller.user_id).await
        }
        .await,
    )
}

/// The bot hands back a token from `/start <token>` in a private chat: the acting Telegram
/// user claims it (links nothing yet) and is asked to confirm. Refused when this Telegram
/// user is linked already (a chat is never re-linked by a token) or the token's account is
/// linked to someone else, without spending the token. Service-only (`telegram:link`);
/// answers the account's email, for the question.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/link/claim", input = Json)]
pub async fn claim_link_token(token: String) -> Result<String, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            let service = authorize_service(Permission::TelegramLink)?;
            let telegram_user_id = service.acting_telegram_user.ok_or(ApiError::Forbidden)?;
            let state = crate::state::app_state()?;
            service::claim_token(&state, telegram_user_id, &token).await
        }
        .await,
    )
}

/// Approve or Decline pressed under the question `/start <token>` produced: only the
/// Telegram user who claimed the token may answer, once, and only while the token is valid
/// (5 minutes from its creation). Service-only (`telegram:link`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/link/confirm", input = Json)]
pub async fn confirm_link_token(token: String, approve: bool) -> Result<LinkConfirmed, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            let service = authorize_service(Permission::TelegramLink)?;
            let telegram_user_id = service.acting_telegram_user.ok_or(ApiError::Forbidden)?;
            let state = crate::state::app_state()?;
            service::confirm_token(&state, telegram_user_id, &token, approve).await
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

    use serde::{Deserialize, Serialize};

    use super::{
        LinkConfirmed, LinkOutcome, LinkToken, PendingLink, TOKEN_TTL_SECS, TelegramLinkInfo,
    };
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

    /// A token's entry in the bucket. The bucket's TTL only bounds how long an entry is kept
    /// (an update restarts it); `expires_at` is the token's own lifetime.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct TokenEntry {
        pub user_id: Uuid,
        /// Unix seconds.
        pub expires_at: i64,
        /// The Telegram user who opened the link and is being asked to confirm.
        #[serde(default)]
        pub claimant: Option<i64>,
    }

    /// The settings page's view of a claimed token: key `pending.<user id>`.
    fn pending_key(user_id: Uuid) -> String {
        format!("pending.{user_id}")
    }

    fn now_secs() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn unavailable(error: impl std::fmt::Display) -> ApiError {
        tracing::warn!(%error, "link-token storage is unavailable");
        ApiError::Unavailable
    }

    fn encode<T: Serialize>(value: &T) -> Result<bytes::Bytes, ApiError> {
        Ok(serde_json::to_vec(value)
            .context("failed to encode a link token entry")
            .map_err(internal)?
            .into())
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
        let entry = TokenEntry {
            user_id,
            expires_at: now_secs() + i64::try_from(TOKEN_TTL_SECS).unwrap_or(300),
            claimant: None,
        };
        store
            .create(&token, encode(&entry)?)
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

    pub async fn status(state: &AppState, user_id: Uuid) -> Result<TelegramLinkInfo, ApiError> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT first_name, username FROM telegram_accounts WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&state.db)
                .await
                .context("failed to read the Telegram link")
                .map_err(internal)?;
        Ok(match row {
            Some((first_name, username)) => TelegramLinkInfo {
                linked: true,
                first_name: Some(first_name).filter(|name| !name.is_empty()),
                username,
                pending: None,
            },
            None => TelegramLinkInfo {
                linked: false,
                first_name: None,
                username: None,
                pending: pending(state, user_id).await?,
            },
        })
    }

    async fn pending(state: &AppState, user_id: Uuid) -> Result<Option<PendingLink>, ApiError> {
        let store = tokens(state).await?;
        let Some(value) = store.get(pending_key(user_id)).await.map_err(unavailable)? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&value).ok())
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

    /// The token's entry and its revision; `LinkExpired` for an unknown, malformed or
    /// outlived token, `LinkUsed` for a spent one.
    async fn read_token(store: &kv::Store, token: &str) -> Result<(TokenEntry, u64), ApiError> {
        if !well_formed(token) {
            return Err(ApiError::LinkExpired);
        }
        let entry = store
            .entry(token)
            .await
            .map_err(unavailable)?
            .ok_or(ApiError::LinkExpired)?;
        if entry.operation != kv::Operation::Put {
            return Err(ApiError::LinkUsed);
        }
        let parsed: TokenEntry =
            serde_json::from_slice(&entry.value).map_err(|_| ApiError::LinkExpired)?;
        if parsed.expires_at <= now_secs() {
            return Err(ApiError::LinkExpired);
        }
        Ok((parsed, entry.revision))
    }

    /// `/start <token>`: the acting Telegram user claims the token and will be asked to
    /// confirm; nothing is linked here.
    pub async fn claim_token(
        state: &AppState,
        telegram_user_id: i64,
        token: &str,
    ) -> Result<String, ApiError> {
        let store = tokens(state).await?;
        let (mut entry, revision) = read_token(&store, token).await?;
        // Refuse before touching the token when either side is linked already. A linked chat
        // is never re-linked by a token, whoever made it.
        let me: Option<(Option<Uuid>, String, Option<String>)> = sqlx::query_as(
            "SELECT user_id, first_name, username FROM telegram_accounts
              WHERE telegram_user_id = $1",
        )
        .bind(telegram_user_id)
        .fetch_optional(&state.db)
        .await
        .context("failed to read a Telegram account")
        .map_err(internal)?;
        let Some((linked, first_name, username)) = me else {
            // `telegram/hello` records everyone the bot hears from before any command.
            return Err(ApiError::Forbidden);
        };
        if linked.is_some() {
            return Err(already_linked_chat());
        }
        let (account_linked,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM telegram_accounts WHERE user_id = $1)")
                .bind(entry.user_id)
                .fetch_one(&state.db)
                .await
                .context("failed to read the Telegram link")
                .map_err(internal)?;
        if account_linked {
            return Err(already_linked_account());
        }
        match entry.claimant {
            // The same person opening the link again (or a retried update): ask again.
            Some(claimant) if claimant == telegram_user_id => {}
            Some(_) => return Err(ApiError::LinkUsed),
            None => {
                entry.claimant = Some(telegram_user_id);
                // Of two people opening one link at once, only one claims it.
                store
                    .update(token, encode(&entry)?, revision)
                    .await
                    .map_err(|_| ApiError::LinkUsed)?;
            }
        }
        let shown = PendingLink {
            first_name,
            username,
            declined: false,
        };
        store
            .put(pending_key(entry.user_id), encode(&shown)?)
            .await
            .map_err(unavailable)?;
        let account = accounts::find_user(&state.db, entry.user_id)
            .await?
            .ok_or(ApiError::LinkExpired)?;
        Ok(account.email)
    }

    /// Approve or Decline under the question: decided first (the token is spent by a delete
    /// that must follow the revision read), then linked, so of two answers exactly one counts.
    pub async fn confirm_token(
        state: &AppState,
        telegram_user_id: i64,
        token: &str,
        approve: bool,
    ) -> Result<LinkConfirmed, ApiError> {
        let store = tokens(state).await?;
        let (entry, revision) = read_token(&store, token).await?;
        if entry.claimant != Some(telegram_user_id) {
            return Err(ApiError::Forbidden);
        }
        store
            .delete_expect_revision(token, Some(revision))
            .await
            .map_err(|_| ApiError::LinkUsed)?;
        let outcome = if approve {
            // Whatever happens next, the page stops showing the question.
            let linked = link_accounts(state, telegram_user_id, entry.user_id).await;
            store
                .delete(pending_key(entry.user_id))
                .await
                .map_err(unavailable)?;
            linked?;
            tracing::info!(user_id = %entry.user_id, "Telegram account linked");
            LinkOutcome::Linked
        } else {
            if let Some(mut shown) = pending(state, entry.user_id).await? {
                shown.declined = true;
                store
                    .put(pending_key(entry.user_id), encode(&shown)?)
                    .await
                    .map_err(unavailable)?;
            }
            LinkOutcome::Declined
        };
        let account = accounts::find_user(&state.db, entry.user_id)
            .await?
            .ok_or(ApiError::LinkExpired)?;
        Ok(LinkConfirmed {
            outcome,
            email: account.email,
        })
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
