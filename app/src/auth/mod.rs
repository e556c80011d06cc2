//! Accounts and authentication: web sign-up and sign-in, sessions, CSRF, rate limits, signed
//! service calls, Mini App initData and passkeys.

pub mod passkeys;
pub mod signing;

#[cfg(feature = "ssr")]
pub mod accounts;
#[cfg(feature = "ssr")]
pub mod init_data;
#[cfg(feature = "ssr")]
pub mod one_time;
#[cfg(feature = "ssr")]
pub mod password;
#[cfg(feature = "ssr")]
pub mod principal;
#[cfg(feature = "ssr")]
pub mod ratelimit;
#[cfg(feature = "ssr")]
pub mod service_calls;
#[cfg(feature = "ssr")]
pub mod sessions;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// The signed-in person, as pages see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: Uuid,
    pub email: String,
    pub is_admin: bool,
}

/// Creates an account with email and password and signs it in.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/sign-up")]
pub async fn sign_up(email: String, password: String) -> Result<CurrentUser, ApiError> {
    crate::error::respond(
        async {
            let ctx = accounts::RequestCtx::current()?;
            let user = accounts::sign_up(&ctx, &email, &password).await?;
            accounts::start_web_session(&ctx, user.id).await?;
            Ok(user)
        }
        .await,
    )
}

/// Signs in with email and password.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/sign-in")]
pub async fn sign_in(email: String, password: String) -> Result<CurrentUser, ApiError> {
    crate::error::respond(
        async {
            let ctx = accounts::RequestCtx::current()?;
            let user = accounts::sign_in(&ctx, &email, &password).await?;
            accounts::start_web_session(&ctx, user.id).await?;
            Ok(user)
        }
        .await,
    )
}

/// Ends the current session (and clears its cookie).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/sign-out")]
pub async fn sign_out() -> Result<(), ApiError> {
    crate::error::respond(
        async {
            let ctx = accounts::RequestCtx::current()?;
            accounts::sign_out(&ctx).await
        }
        .await,
    )
}

/// The signed-in person, or `None`.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/me")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, ApiError> {
    crate::error::respond(
        async {
            let Some(caller) = principal::optional_caller().await? else {
                return Ok(None);
            };
            let state = crate::state::app_state()?;
            accounts::find_user(&state.db, caller.user_id).await
        }
        .await,
    )
}

/// A Mini App session: sent back by the client in the `X-Dossier-Session` header, because
/// inside Telegram's cross-site iframe cookies are often blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiniAppSession {
    pub token: String,
    pub expires_in_secs: i64,
    pub user: CurrentUser,
}

/// Signs a Telegram Mini App in with the raw `initData` string Telegram handed it.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/telegram/miniapp")]
pub async fn miniapp_sign_in(init_data: String) -> Result<MiniAppSession, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            accounts::miniapp_sign_in(&state, &init_data, now).await
        }
        .await,
    )
}

/// The way forward for an unlinked Telegram user in the Mini App: sign in to an existing
/// account (`create = false`) or create one (`create = true`), link it to the Telegram user the
/// initData proves, and get a Mini App session. Public: the initData and the password are the
/// credentials.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/telegram/miniapp/connect")]
pub async fn miniapp_connect(
    init_data: String,
    email: String,
    password: String,
    create: bool,
) -> Result<MiniAppSession, ApiError> {
    crate::error::respond(
        async {
            let ctx = accounts::RequestCtx::current()?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            accounts::miniapp_connect(&ctx, &init_data, &email, &password, create, now).await
        }
        .await,
    )
}
