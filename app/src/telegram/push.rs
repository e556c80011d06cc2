//! Linking by push approval: the web asks the bot to send "Link to account <email>?" with
//! Approve / Decline / Block to a Telegram user who has talked to the bot; the request lives in
//! NATS KV `{env}-push-link` (5 minutes) and the web page polls its status.
//!
//! The page learns nothing about a username it did not already own: whether nobody by that
//! name has talked to the bot, the name belongs to a linked account, its owner blocked
//! requests or has had enough of them this hour, the answer is the same "sent if they
//! exist" request that stays pending until it expires. Only the addressed person's tap
//! changes it. A username names the one Telegram user who last used it (Telegram usernames
//! move between people; the bot forgets a name on the older row when a newer one shows it).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

use crate::error::ApiError;

pub const REQUEST_TTL_SECS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushStatus {
    Pending,
    Approved,
    Declined,
    Expired,
    /// Approved, but the link could not be made (one side was linked meanwhile).
    Failed,
}

/// What the bot receives on `{env}.telegram.push-link.requested`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushLinkRequested {
    pub request_id: String,
    pub chat_id: i64,
    pub email: String,
    pub language_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushLinkStarted {
    pub request_id: String,
    pub expires_in_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAnswer {
    pub status: PushStatus,
    pub email: String,
}

/// Sends an approval request to the Telegram user `username` (who must have started the bot).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/push-link")]
pub async fn request_push_link(username: String) -> Result<PushLinkStarted, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            service::request(&state, caller.user_id, &username).await
        }
        .await,
    )
}

/// The status of one of the caller's push requests (the page asks every 2 s).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/push-link/status")]
pub async fn push_link_status(request_id: String) -> Result<PushStatus, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            service::status(&state, caller.user_id, &request_id).await
        }
        .await,
    )
}

/// The bot reports a tap on Approve or Decline; only the addressed Telegram user may answer,
/// and only once: the answer is recorded (compare-and-set on the request) before anything is
/// linked. Service-only (`telegram:link`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/push-link/answer", input = Json)]
pub async fn answer_push_link(request_id: String, approve: bool) -> Result<PushAnswer, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            let service = authorize_service(Permission::TelegramLink)?;
            let telegram_user_id = service.acting_telegram_user.ok_or(ApiError::Forbidden)?;
            let state = crate::state::app_state()?;
            service::answer(&state, telegram_user_id, &request_id, approve).await
        }
        .await,
    )
}

/// The bot reports a tap on Block: the request is declined and its addressee gets no more
/// push requests (deep links they open themselves still work). Service-only (`telegram:link`).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "telegram/push-link/block", input = Json)]
pub async fn block_push_links(request_id: String) -> Result<PushAnswer, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize_service};
            let service = authorize_service(Permission::TelegramLink)?;
            let telegram_user_id = service.acting_telegram_user.ok_or(ApiError::Forbidden)?;
            let state = crate::state::app_state()?;
            service::block(&state, telegram_user_id, &request_id).await
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
pub mod service {
    use std::time::Duration;

    use anyhow::Context;
    use async_nats::jetstream::kv;
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    use super::{PushAnswer, PushLinkRequested, PushLinkStarted, PushStatus, REQUEST_TTL_SECS};
    use crate::auth::{accounts, ratelimit};
    use crate::error::ApiError;
    use crate::state::{AppState, internal};
    use crate::telegram::link::service::{bucket, link_accounts};

    pub const REQUESTS_PER_ACCOUNT: ratelimit::Limit = ratelimit::Limit {
        max_hits: 5,
        window: Duration::from_secs(600),
    };

    #[derive(Debug, Serialize, Deserialize)]
    struct Stored {
        status: PushStatus,
        user_id: Uuid,
        /// Whom the question was sent to; `None` when it was sent to nobody (no such user,
        /// linked, blocked, or asked too often), which the requester cannot tell apart.
        telegram_user_id: Option<i64>,
        email: String,
    }

    /// Questions one Telegram user receives from the web, whoever asks.
    pub const REQUESTS_PER_TARGET: ratelimit::Limit = ratelimit::Limit {
        max_hits: 3,
        window: Duration::from_secs(3600),
    };

    async fn requests(state: &AppState) -> Result<kv::Store, ApiError> {
        bucket(
            state,
            state.subjects.push_link_bucket(),
            Duration::from_secs(REQUEST_TTL_SECS),
        )
        .await
    }

    fn unavailable(error: impl std::fmt::Display) -> ApiError {
        tracing::warn!(%error, "push-link storage is unavailable");
        ApiError::Unavailable
    }

    fn well_formed(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    pub async fn request(
        state: &AppState,
        user_id: Uuid,
        username: &str,
    ) -> Result<PushLinkStarted, ApiError> {
        ratelimit::hit(
            &state.db,
            &format!("push-link:user:{user_id}"),
            REQUESTS_PER_ACCOUNT,
        )
        .await?;
        let username = username.trim().trim_start_matches('@');
        if username.is_empty()
            || username.len() > 32
            || !username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ApiError::field("username", "enter your Telegram username"));
        }
        let account = accounts::find_user(&state.db, user_id)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        let already: Option<(i64,)> =
            sqlx::query_as("SELECT telegram_user_id FROM telegram_accounts WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&state.db)
                .await
                .context("failed to read the Telegram link")
                .map_err(internal)?;
        if already.is_some() {
            return Err(ApiError::Conflict {
                message: "your account is already linked to Telegram".into(),
            });
        }
        // The newest user of the name (names move between Telegram users).
        let target: Option<(i64, i64, Option<String>, bool)> = sqlx::query_as(
            "SELECT telegram_user_id, chat_id, language_code,
                    user_id IS NULL AND push_blocked_at IS NULL
               FROM telegram_accounts
              WHERE lower(username) = lower($1) AND chat_id IS NOT NULL
              ORDER BY last_seen_at DESC
              LIMIT 1",
        )
        .bind(username)
        .fetch_optional(&state.db)
        .await
        .context("failed to find a Telegram user")
        .map_err(internal)?;
        let mut deliver = None;
        if let Some((telegram_user_id, chat_id, language_code, askable)) = target
            && askable
        {
            match ratelimit::hit(
                &state.db,
                &format!("push-link:target:{telegram_user_id}"),
                REQUESTS_PER_TARGET,
            )
            .await
            {
                Ok(()) => deliver = Some((telegram_user_id, chat_id, language_code)),
                Err(ApiError::RateLimited { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        let request_id = Uuid::new_v4().simple().to_string();
        let stored = Stored {
            status: PushStatus::Pending,
            user_id,
            telegram_user_id: deliver.as_ref().map(|(id, _, _)| *id),
            email: account.email.clone(),
        };
        requests(state)
            .await?
            .create(&request_id, encode(&stored)?)
            .await
            .map_err(unavailable)?;
        if let Some((_, chat_id, language_code)) = deliver {
            let event = PushLinkRequested {
                request_id: request_id.clone(),
                chat_id,
                email: account.email,
                language_code,
            };
            let payload = serde_json::to_vec(&event)
                .context("failed to encode a push event")
                .map_err(internal)?;
            state
                .nats
                .publish(state.subjects.push_link_requested(), payload.into())
                .await
                .map_err(unavailable)?;
            state.nats.flush().await.map_err(unavailable)?;
        }
        Ok(PushLinkStarted {
            request_id,
            expires_in_secs: REQUEST_TTL_SECS,
        })
    }

    fn encode(stored: &Stored) -> Result<bytes::Bytes, ApiError> {
        Ok(serde_json::to_vec(stored)
            .context("failed to encode a push request")
            .map_err(internal)?
            .into())
    }

    async fn load(store: &kv::Store, request_id: &str) -> Result<Option<(Stored, u64)>, ApiError> {
        if !well_formed(request_id) {
            return Ok(None);
        }
        let Some(entry) = store.entry(request_id).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let stored: Stored = serde_json::from_slice(&entry.value)
            .context("a stored push request does not parse")
            .map_err(internal)?;
        Ok(Some((stored, entry.revision)))
    }

    pub async fn status(
        state: &AppState,
        user_id: Uuid,
        request_id: &str,
    ) -> Result<PushStatus, ApiError> {
        match load(&requests(state).await?, request_id).await? {
            Some((stored, _)) if stored.user_id == user_id => Ok(stored.status),
            Some(_) => Err(ApiError::NotFound),
            None => Ok(PushStatus::Expired),
        }
    }

    /// The request, checked to be addressed to `telegram_user_id` and unanswered.
    async fn open_for(
        store: &kv::Store,
        telegram_user_id: i64,
        request_id: &str,
    ) -> Result<(Stored, u64), ApiError> {
        let (stored, revision) = load(store, request_id)
            .await?
            .ok_or(ApiError::LinkExpired)?;
        // Only the Telegram user the request was sent to may answer it.
        if stored.telegram_user_id != Some(telegram_user_id) {
            return Err(ApiError::Forbidden);
        }
        if stored.status != PushStatus::Pending {
            return Err(ApiError::LinkUsed);
        }
        Ok((stored, revision))
    }

    /// Records `status` on the request, following the revision that was read: of two
    /// answers, exactly one is recorded.
    async fn decide(
        store: &kv::Store,
        request_id: &str,
        stored: &mut Stored,
        revision: u64,
        status: PushStatus,
    ) -> Result<u64, ApiError> {
        stored.status = status;
        store
            .update(request_id, encode(stored)?, revision)
            .await
            .map_err(|_| ApiError::LinkUsed)
    }

    pub async fn answer(
        state: &AppState,
        telegram_user_id: i64,
        request_id: &str,
        approve: bool,
    ) -> Result<PushAnswer, ApiError> {
        let store = requests(state).await?;
        let (mut stored, revision) = open_for(&store, telegram_user_id, request_id).await?;
        let decided = if approve {
            PushStatus::Approved
        } else {
            PushStatus::Declined
        };
        // Decided first, linked after: a second tap (or a retried call) finds it answered.
        let revision = decide(&store, request_id, &mut stored, revision, decided).await?;
        if approve && let Err(error) = link_accounts(state, telegram_user_id, stored.user_id).await
        {
            // The page shows why nothing was linked.
            if let Err(failed) = decide(
                &store,
                request_id,
                &mut stored,
                revision,
                PushStatus::Failed,
            )
            .await
            {
                tracing::warn!(error = %failed, "a failed push link could not be recorded");
            }
            return Err(error);
        }
        Ok(PushAnswer {
            status: stored.status,
            email: stored.email,
        })
    }

    pub async fn block(
        state: &AppState,
        telegram_user_id: i64,
        request_id: &str,
    ) -> Result<PushAnswer, ApiError> {
        let store = requests(state).await?;
        let (mut stored, revision) = open_for(&store, telegram_user_id, request_id).await?;
        decide(
            &store,
            request_id,
            &mut stored,
            revision,
            PushStatus::Declined,
        )
        .await?;
        sqlx::query(
            "UPDATE telegram_accounts SET push_blocked_at = now()
              WHERE telegram_user_id = $1 AND push_blocked_at IS NULL",
        )
        .bind(telegram_user_id)
        .execute(&state.db)
        .await
        .context("failed to block push requests")
        .map_err(internal)?;
        tracing::info!("a Telegram user blocked push-link requests");
        Ok(PushAnswer {
            status: stored.status,
            email: stored.email,
        })
    }
}
