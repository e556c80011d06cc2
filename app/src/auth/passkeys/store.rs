//! Server side of the passkey ceremonies, on webauthn-rs. Every query is filtered by the
//! caller's user; ceremony rows are consumed with `DELETE … RETURNING`, so a replayed
//! `finish` finds nothing.

use std::time::Duration;

use anyhow::Context;
use uuid::Uuid;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::{Ceremony, PasskeyInfo};
use crate::auth::accounts::RequestCtx;
use crate::auth::principal::{self, Caller, Permission, Via, check_origin, client_ip};
use crate::auth::{CurrentUser, accounts, one_time, ratelimit};
use crate::error::ApiError;
use crate::state::{AppState, internal};

/// How long the browser has between `start` and `finish`.
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(300);
/// A generous cap that still bounds the exclude list and the account page.
pub const MAX_PASSKEYS_PER_USER: i64 = 20;

/// Passkeys belong to people: web and Mini App sessions, never a service acting for someone.
pub async fn authorize_person() -> Result<Caller, ApiError> {
    let caller = principal::authorize(Permission::UsersRead).await?;
    match caller.via {
        Via::Web | Via::MiniApp => Ok(caller),
        Via::Service { .. } => Err(ApiError::Forbidden),
    }
}

fn webauthn(state: &AppState) -> Result<&Webauthn, ApiError> {
    state.webauthn.as_deref().ok_or_else(|| {
        tracing::warn!(
            public_url = %state.settings.public_url,
            "passkeys are off: public_url must name a host (e.g. http://localhost:3000), not an IP address"
        );
        ApiError::Unavailable
    })
}

/// Builds the relying party from the public URL: RP id = its host, origin = the URL itself.
/// `None` (passkeys off) when the host cannot be an RP id, such as an IP address.
pub fn relying_party(public_url: &str, rp_id: &str) -> Option<Webauthn> {
    if rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[') {
        return None;
    }
    let origin = url::Url::parse(public_url).ok()?;
    webauthn_rs::WebauthnBuilder::new(rp_id, &origin)
        .ok()?
        .rp_name("Dossier")
        .build()
        .ok()
}

async fn save_ceremony(
    db: &sqlx::PgPool,
    user_id: Option<Uuid>,
    kind: &str,
    state: serde_json::Value,
) -> Result<Uuid, ApiError> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO webauthn_ceremonies (id, user_id, kind, state, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(id)
    .bind(user_id)
    .bind(kind)
    .bind(state)
    .bind(CEREMONY_LIFETIME.as_secs_f64())
    .execute(db)
    .await
    .context("failed to store a WebAuthn ceremony")
    .map_err(internal)?;
    Ok(id)
}

/// Takes a ceremony out of the table (once). Expired, unknown, someone else's or already used
/// ceremonies all read as "start again".
async fn take_ceremony(
    db: &sqlx::PgPool,
    id: Uuid,
    kind: &str,
    user_id: Option<Uuid>,
) -> Result<serde_json::Value, ApiError> {
    let row: Option<(serde_json::Value,)> = sqlx::query_as(
        "DELETE FROM webauthn_ceremonies
         WHERE id = $1 AND kind = $2 AND user_id IS NOT DISTINCT FROM $3 AND expires_at > now()
         RETURNING state",
    )
    .bind(id)
    .bind(kind)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .context("failed to load a WebAuthn ceremony")
    .map_err(internal)?;
    row.map(|(state,)| state)
        .ok_or_else(|| ApiError::validation("this passkey request has expired; please try again"))
}

pub async fn start_registration(
    state: &AppState,
    user_id: Uuid,
) -> Result<Ceremony<CreationChallengeResponse>, ApiError> {
    let webauthn = webauthn(state)?;
    let user = accounts::find_user(&state.db, user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let existing: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT credential_id FROM passkeys WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&state.db)
            .await
            .context("failed to list credential ids")
            .map_err(internal)?;
    if i64::try_from(existing.len()).unwrap_or(i64::MAX) >= MAX_PASSKEYS_PER_USER {
        return Err(ApiError::Conflict {
            message: format!(
                "you already have {MAX_PASSKEYS_PER_USER} passkeys; delete one to add another"
            ),
        });
    }
    let exclude = existing.into_iter().map(|(id,)| id).collect();
    let (mut options, registration) = webauthn
        .start_passkey_registration(user.id, &user.email, &user.email, Some(exclude))
        .context("failed to start a passkey registration")
        .map_err(internal)?;
    // Sign-in is username-less, so the credential must be discoverable (a resident key).
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    let saved = serde_json::to_value(&registration)
        .context("failed to serialise a passkey registration")
        .map_err(internal)?;
    let ceremony = save_ceremony(&state.db, Some(user_id), "register", saved).await?;
    Ok(Ceremony { ceremony, options })
}

pub async fn finish_registration(
    state: &AppState,
    user_id: Uuid,
    ceremony: Uuid,
    name: &str,
    credential: &RegisterPublicKeyCredential,
) -> Result<PasskeyInfo, ApiError> {
    let webauthn = webauthn(state)?;
    let saved = take_ceremony(&state.db, ceremony, "register", Some(user_id)).await?;
    let registration: PasskeyRegistration = serde_json::from_value(saved)
        .context("a stored passkey registration does not parse")
        .map_err(internal)?;
    // An authenticator that already holds a registered credential (ours or someone else's):
    // say so plainly instead of a verification failure.
    let raw_id: &[u8] = credential.raw_id.as_ref();
    let known: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM passkeys WHERE credential_id = $1")
        .bind(raw_id)
        .fetch_optional(&state.db)
        .await
        .context("failed to look up a credential id")
        .map_err(internal)?;
    if known.is_some() {
        return Err(already_registered());
    }
    let passkey = webauthn
        .finish_passkey_registration(credential, &registration)
        .map_err(|error| {
            tracing::info!(%error, "passkey registration rejected");
            ApiError::validation("the passkey could not be verified; please try again")
        })?;
    let stored = serde_json::to_value(&passkey)
        .context("failed to serialise a passkey")
        .map_err(internal)?;
    let row: Result<(Uuid, time::OffsetDateTime), sqlx::Error> = sqlx::query_as(
        "INSERT INTO passkeys (id, user_id, credential_id, passkey, name)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(passkey.cred_id().as_slice())
    .bind(stored)
    .bind(name)
    .fetch_one(&state.db)
    .await;
    match row {
        Ok((id, created_at)) => Ok(PasskeyInfo {
            id,
            name: name.to_owned(),
            created_at,
            last_used_at: None,
        }),
        Err(error) if accounts::constraint(&error) == Some("passkeys_credential_id_key") => {
            Err(already_registered())
        }
        Err(error) => Err(internal(
            anyhow::Error::new(error).context("failed to store a passkey"),
        )),
    }
}

fn already_registered() -> ApiError {
    ApiError::Conflict {
        message: "this passkey is already registered".into(),
    }
}

pub async fn start_sign_in(
    ctx: &RequestCtx,
) -> Result<Ceremony<RequestChallengeResponse>, ApiError> {
    let webauthn = webauthn(&ctx.state)?;
    let ip = client_ip(&ctx.parts, ctx.state.settings.trusted_proxies);
    ratelimit::hit(
        &ctx.state.db,
        &format!("passkey:ip:{ip}"),
        ratelimit::SIGN_IN_PER_IP,
    )
    .await?;
    let (mut options, authentication) = webauthn
        .start_discoverable_authentication()
        .context("failed to start a passkey sign-in")
        .map_err(internal)?;
    // webauthn-rs asks for conditional mediation (autofill); this flow runs from a button,
    // where the browser's ordinary passkey picker is what people expect.
    options.mediation = None;
    let saved = serde_json::to_value(&authentication)
        .context("failed to serialise a passkey sign-in")
        .map_err(internal)?;
    let ceremony = save_ceremony(&ctx.state.db, None, "authenticate", saved).await?;
    Ok(Ceremony { ceremony, options })
}

pub async fn finish_sign_in(
    ctx: &RequestCtx,
    ceremony: Uuid,
    credential: &PublicKeyCredential,
) -> Result<CurrentUser, ApiError> {
    // Signing in sets a cookie: the same login-CSRF defence as the password form.
    check_origin(&ctx.parts.headers, &ctx.state.settings.public_url)?;
    let webauthn = webauthn(&ctx.state)?;
    let db = &ctx.state.db;
    let saved = take_ceremony(db, ceremony, "authenticate", None).await?;
    let authentication: DiscoverableAuthentication = serde_json::from_value(saved)
        .context("a stored passkey sign-in does not parse")
        .map_err(internal)?;
    let not_recognised =
        || ApiError::validation("this passkey is not registered here; sign in with your password");
    let (user_id, credential_id) = webauthn
        .identify_discoverable_authentication(credential)
        .map_err(|_| not_recognised())?;
    let row: Option<(Uuid, serde_json::Value)> = sqlx::query_as(
        "SELECT id, passkey FROM passkeys WHERE credential_id = $1 AND user_id = $2",
    )
    .bind(credential_id)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .context("failed to load a passkey")
    .map_err(internal)?;
    let (passkey_id, stored) = row.ok_or_else(not_recognised)?;
    let mut passkey: Passkey = serde_json::from_value(stored)
        .context("a stored passkey does not parse")
        .map_err(internal)?;
    let result = webauthn
        .finish_discoverable_authentication_v2(credential, authentication, &passkey)
        .map_err(|error| {
            tracing::info!(%error, "passkey sign-in rejected");
            ApiError::validation("the passkey could not be verified; please try again")
        })?;
    if !result.user_verified() {
        return Err(ApiError::validation(
            "this passkey did not verify you (PIN or biometrics); please try again",
        ));
    }
    // The signature counter and backup state move on; store them when they changed.
    let updated = match passkey.update_credential(&result) {
        Some(true) => Some(
            serde_json::to_value(&passkey)
                .context("failed to serialise a passkey")
                .map_err(internal)?,
        ),
        _ => None,
    };
    sqlx::query(
        "UPDATE passkeys SET last_used_at = now(), passkey = COALESCE($3, passkey)
         WHERE id = $1 AND user_id = $2",
    )
    .bind(passkey_id)
    .bind(user_id)
    .bind(updated)
    .execute(db)
    .await
    .context("failed to record a passkey use")
    .map_err(internal)?;
    accounts::find_user(db, user_id)
        .await?
        .ok_or_else(not_recognised)
}

type InfoRow = (
    Uuid,
    String,
    time::OffsetDateTime,
    Option<time::OffsetDateTime>,
);

fn info((id, name, created_at, last_used_at): InfoRow) -> PasskeyInfo {
    PasskeyInfo {
        id,
        name,
        created_at,
        last_used_at,
    }
}

pub async fn list(db: &sqlx::PgPool, user_id: Uuid) -> Result<Vec<PasskeyInfo>, ApiError> {
    let rows: Vec<InfoRow> = sqlx::query_as(
        "SELECT id, name, created_at, last_used_at FROM passkeys
         WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
    .context("failed to list passkeys")
    .map_err(internal)?;
    Ok(rows.into_iter().map(info).collect())
}

pub async fn rename(
    db: &sqlx::PgPool,
    user_id: Uuid,
    id: Uuid,
    name: &str,
) -> Result<PasskeyInfo, ApiError> {
    let row: Option<InfoRow> = sqlx::query_as(
        "UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2
         RETURNING id, name, created_at, last_used_at",
    )
    .bind(id)
    .bind(user_id)
    .bind(name)
    .fetch_optional(db)
    .await
    .context("failed to rename a passkey")
    .map_err(internal)?;
    row.map(info).ok_or(ApiError::NotFound)
}

/// Deletes one of the caller's passkeys. The user row is locked so two concurrent deletes
/// cannot remove the last two ways into a password-less account.
pub async fn delete(db: &sqlx::PgPool, user_id: Uuid, id: Uuid) -> Result<(), ApiError> {
    let mut tx = db
        .begin()
        .await
        .context("failed to begin a transaction")
        .map_err(internal)?;
    let (has_password, count): (bool, i64) = sqlx::query_as(
        "SELECT u.password_hash IS NOT NULL,
                (SELECT count(*) FROM passkeys p WHERE p.user_id = u.id)
         FROM users u WHERE u.id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await
    .context("failed to lock a user")
    .map_err(internal)?
    .ok_or(ApiError::Unauthenticated)?;
    let exists: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .context("failed to find a passkey")
            .map_err(internal)?;
    if exists.is_none() {
        return Err(ApiError::NotFound);
    }
    if !has_password && count <= 1 {
        return Err(ApiError::Conflict {
            message: "this is your only way to sign in; add another passkey or a password first"
                .into(),
        });
    }
    sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .context("failed to delete a passkey")
        .map_err(internal)?;
    tx.commit()
        .await
        .context("failed to commit a passkey deletion")
        .map_err(internal)?;
    Ok(())
}

/// A passkey set up in the system browser for a Mini App user: the one-time link's id and the
/// URL to open. The token travels in the URL fragment, so it never reaches a server log or a
/// `Referer`.
pub async fn create_setup_link(
    state: &AppState,
    user_id: Uuid,
) -> Result<super::PasskeySetupLink, ApiError> {
    webauthn(state)?;
    let (setup, token) =
        one_time::create(&state.db, user_id, one_time::Purpose::PasskeySetup).await?;
    let base = state.settings.public_url.trim_end_matches('/');
    Ok(super::PasskeySetupLink {
        setup,
        url: format!("{base}/passkeys/setup#{token}"),
        expires_in_secs: one_time::LIFETIME.as_secs(),
    })
}

/// Opens a setup link (once) and starts the registration for the person it belongs to.
pub async fn start_setup(
    state: &AppState,
    token: &str,
) -> Result<super::PasskeySetupStart, ApiError> {
    webauthn(state)?;
    let (setup, user_id) = one_time::take(&state.db, token, one_time::Purpose::PasskeySetup)
        .await?
        .ok_or_else(setup_link_gone)?;
    let email = accounts::find_user(&state.db, user_id)
        .await?
        .ok_or_else(setup_link_gone)?
        .email;
    let ceremony = start_registration(state, user_id).await?;
    Ok(super::PasskeySetupStart {
        setup,
        email,
        ceremony,
    })
}

fn setup_link_gone() -> ApiError {
    ApiError::validation(
        "this setup link has expired or was already used; start again from Dossier in Telegram",
    )
}

/// Finishes the registration a setup link started; the ceremony is bound to the link's person.
pub async fn finish_setup(
    state: &AppState,
    setup: Uuid,
    ceremony: Uuid,
    name: &str,
    credential: &RegisterPublicKeyCredential,
) -> Result<PasskeyInfo, ApiError> {
    let row: Option<(Uuid,)> = sqlx::query_as(
        "SELECT user_id FROM one_time_links
          WHERE id = $1 AND purpose = 'passkey_setup' AND used_at IS NOT NULL
            AND completed_at IS NULL AND used_at > now() - make_interval(secs => $2)",
    )
    .bind(setup)
    .bind(one_time::LIFETIME.as_secs_f64())
    .fetch_optional(&state.db)
    .await
    .context("failed to read a passkey setup")
    .map_err(internal)?;
    let (user_id,) = row.ok_or_else(setup_link_gone)?;
    let passkey = finish_registration(state, user_id, ceremony, name, credential).await?;
    sqlx::query(
        "UPDATE one_time_links SET completed_at = now(), passkey_name = $2
          WHERE id = $1 AND user_id = $3",
    )
    .bind(setup)
    .bind(&passkey.name)
    .bind(user_id)
    .execute(&state.db)
    .await
    .context("failed to record a finished passkey setup")
    .map_err(internal)?;
    tracing::info!(%user_id, "passkey added through a setup link");
    Ok(passkey)
}

/// Where one of the caller's setup links is.
pub async fn setup_status(
    db: &sqlx::PgPool,
    user_id: Uuid,
    setup: Uuid,
) -> Result<super::PasskeySetupStatus, ApiError> {
    type Row = (bool, bool, Option<String>, bool);
    let row: Option<Row> = sqlx::query_as(
        "SELECT used_at IS NOT NULL, completed_at IS NOT NULL, passkey_name,
                CASE WHEN used_at IS NULL THEN expires_at > now()
                     ELSE used_at > now() - make_interval(secs => $3) END
           FROM one_time_links
          WHERE id = $1 AND user_id = $2 AND purpose = 'passkey_setup'",
    )
    .bind(setup)
    .bind(user_id)
    .bind(one_time::LIFETIME.as_secs_f64())
    .fetch_optional(db)
    .await
    .context("failed to read a passkey setup")
    .map_err(internal)?;
    use super::PasskeySetupStatus as S;
    Ok(match row.ok_or(ApiError::NotFound)? {
        (_, true, name, _) => S::Done {
            name: name.unwrap_or_default(),
        },
        (_, false, _, false) => S::Expired,
        (false, false, _, true) => S::Waiting,
        (true, false, _, true) => S::Opened,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_needs_a_host_name() {
        assert!(relying_party("http://localhost:3000", "localhost").is_some());
        assert!(relying_party("https://dossier.example", "dossier.example").is_some());
        assert!(relying_party("http://127.0.0.1:3000", "127.0.0.1").is_none());
        assert!(relying_party("http://[::1]:3000", "[::1]").is_none());
    }
}
