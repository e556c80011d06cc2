//! Passkeys (WebAuthn): registration for a signed-in person, username-less sign-in with a
//! discoverable credential, and listing, renaming and deleting one's passkeys.
//!
//! The ceremony state never leaves the server: `start` stores it in `webauthn_ceremonies` and
//! hands the browser only the options and the ceremony id; `finish` consumes it exactly once.
//! The browser half (`navigator.credentials.create/get` through web-sys) lives in `browser`.

#[cfg(feature = "hydrate")]
pub mod browser;
#[cfg(feature = "ssr")]
pub mod store;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;
use uuid::Uuid;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use super::CurrentUser;
use crate::error::ApiError;

/// The message of a browser or WebView without WebAuthn; the Mini App falls back to the
/// system browser on it.
pub const UNSUPPORTED: &str = "this browser or device does not support passkeys";

/// The longest passkey name, in characters (the database checks it too).
pub const MAX_NAME_CHARS: usize = 64;

/// A passkey as its owner sees it in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<time::OffsetDateTime>,
}

/// What `start` hands the browser: the options for `navigator.credentials.*` and the id of
/// the server-side ceremony that `finish` must name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ceremony<T> {
    pub ceremony: Uuid,
    pub options: T,
}

/// Trims a user-chosen passkey name and rejects empty, overlong or control-character names.
pub fn clean_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::field("name", "give the passkey a name"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::field(
            "name",
            format!("use at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field("name", "use printable characters only"));
    }
    Ok(name.to_owned())
}

/// Starts registering a passkey for the signed-in person.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/register/start")]
pub async fn start_passkey_registration() -> Result<Ceremony<CreationChallengeResponse>, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = store::authorize_person().await?;
            store::start_registration(&state, caller.user_id).await
        }
        .await,
    )
}

/// Verifies the authenticator's answer and stores the new passkey under `name`.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/register/finish", input = Json)]
pub async fn finish_passkey_registration(
    ceremony: Uuid,
    name: String,
    credential: RegisterPublicKeyCredential,
) -> Result<PasskeyInfo, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = store::authorize_person().await?;
            let name = clean_name(&name)?;
            store::finish_registration(&state, caller.user_id, ceremony, &name, &credential).await
        }
        .await,
    )
}

/// Starts a username-less sign-in: the authenticator offers the passkeys it holds for us.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/sign-in/start")]
pub async fn start_passkey_sign_in() -> Result<Ceremony<RequestChallengeResponse>, ApiError> {
    crate::error::respond(
        async {
            let ctx = super::accounts::RequestCtx::current()?;
            store::start_sign_in(&ctx).await
        }
        .await,
    )
}

/// Verifies the assertion, identifies the account from the credential and signs it in.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/sign-in/finish", input = Json)]
pub async fn finish_passkey_sign_in(
    ceremony: Uuid,
    credential: PublicKeyCredential,
) -> Result<CurrentUser, ApiError> {
    crate::error::respond(
        async {
            let ctx = super::accounts::RequestCtx::current()?;
            let user = store::finish_sign_in(&ctx, ceremony, &credential).await?;
            super::accounts::start_web_session(&ctx, user.id).await?;
            Ok(user)
        }
        .await,
    )
}

/// The signed-in person's passkeys, oldest first.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/list")]
pub async fn list_passkeys() -> Result<Vec<PasskeyInfo>, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = store::authorize_person().await?;
            store::list(&state.db, caller.user_id).await
        }
        .await,
    )
}

#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/rename")]
pub async fn rename_passkey(id: Uuid, name: String) -> Result<PasskeyInfo, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = store::authorize_person().await?;
            let name = clean_name(&name)?;
            store::rename(&state.db, caller.user_id, id, &name).await
        }
        .await,
    )
}

/// Deletes a passkey; refused for the last way into an account that has no password.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/delete")]
pub async fn delete_passkey(id: Uuid) -> Result<(), ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = store::authorize_person().await?;
            store::delete(&state.db, caller.user_id, id).await
        }
        .await,
    )
}

/// A link that opens the system browser to add a passkey, for a Mini App whose WebView has no
/// WebAuthn. It works once, for ten minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeySetupLink {
    pub setup: Uuid,
    pub url: String,
    pub expires_in_secs: u64,
}

/// What the setup page gets when it opens a link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasskeySetupStart {
    pub setup: Uuid,
    /// Whose passkey this is, so the page can say so.
    pub email: String,
    pub ceremony: Ceremony<CreationChallengeResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PasskeySetupStatus {
    /// Not opened yet.
    Waiting,
    /// Opened in the browser; the passkey is not added yet.
    Opened,
    Done {
        name: String,
    },
    Expired,
}

/// Creates a one-time passkey setup link for the signed-in person (Mini App or web).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/setup-link")]
pub async fn create_passkey_setup_link() -> Result<PasskeySetupLink, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = store::authorize_person().await?;
            store::create_setup_link(&state, caller.user_id).await
        }
        .await,
    )
}

/// Where one of the caller's setup links is (the Mini App polls this while it waits).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/setup/status")]
pub async fn get_passkey_setup_status(setup: Uuid) -> Result<PasskeySetupStatus, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let caller = store::authorize_person().await?;
            store::setup_status(&state.db, caller.user_id, setup).await
        }
        .await,
    )
}

/// Opens a setup link and starts registering a passkey. Public: the one-time token is the
/// credential, and it works once.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/setup/start")]
pub async fn start_passkey_setup(token: String) -> Result<PasskeySetupStart, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            store::start_setup(&state, &token).await
        }
        .await,
    )
}

/// Finishes a passkey started from a setup link. Public: the ceremony (known only to the page
/// that opened the link) is bound to the link's person and consumed once.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "auth/passkeys/setup/finish", input = Json)]
pub async fn finish_passkey_setup(
    setup: Uuid,
    ceremony: Uuid,
    name: String,
    credential: RegisterPublicKeyCredential,
) -> Result<PasskeyInfo, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let name = clean_name(&name)?;
            store::finish_setup(&state, setup, ceremony, &name, &credential).await
        }
        .await,
    )
}

/// The system-browser half of a setup link: open it, `navigator.credentials.create`, finish.
pub async fn register_passkey_from_link(
    start: PasskeySetupStart,
    name: String,
) -> Result<PasskeyInfo, ApiError> {
    let name = clean_name(&name)?;
    let credential = create_credential(start.ceremony.options).await?;
    finish_passkey_setup(start.setup, start.ceremony.ceremony, name, credential).await
}

/// The whole browser-side registration: start, `navigator.credentials.create`, finish.
pub async fn register_passkey(name: String) -> Result<PasskeyInfo, ApiError> {
    let name = clean_name(&name)?;
    let start = start_passkey_registration().await?;
    let credential = create_credential(start.options).await?;
    finish_passkey_registration(start.ceremony, name, credential).await
}

/// The whole browser-side sign-in: start, `navigator.credentials.get`, finish.
pub async fn sign_in_with_passkey() -> Result<CurrentUser, ApiError> {
    let start = start_passkey_sign_in().await?;
    let credential = get_credential(start.options).await?;
    finish_passkey_sign_in(start.ceremony, credential).await
}

#[cfg(feature = "hydrate")]
use browser::{create_credential, get_credential};

#[cfg(not(feature = "hydrate"))]
async fn create_credential(
    _options: CreationChallengeResponse,
) -> Result<RegisterPublicKeyCredential, ApiError> {
    Err(ApiError::validation(
        "passkeys need JavaScript in the browser",
    ))
}

#[cfg(not(feature = "hydrate"))]
async fn get_credential(
    _options: RequestChallengeResponse,
) -> Result<PublicKeyCredential, ApiError> {
    Err(ApiError::validation(
        "passkeys need JavaScript in the browser",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(clean_name("  Laptop  ").expect("ok"), "Laptop");
        assert_eq!(
            clean_name(&"é".repeat(MAX_NAME_CHARS)).expect("ok").len(),
            MAX_NAME_CHARS * 2
        );
        for bad in ["", "   ", "a\u{0}b", "line\nbreak"] {
            assert!(clean_name(bad).is_err(), "{bad:?}");
        }
        assert!(clean_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
