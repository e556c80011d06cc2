//! Account service code: plain async functions the server functions (and tests) call.

use anyhow::Context;
use http::request::Parts;
use uuid::Uuid;

use super::principal::{check_origin, client_ip};
use super::sessions::{self, SessionKind};
use super::{CurrentUser, password, ratelimit};
use crate::error::ApiError;
use crate::state::{AppState, app_state, internal};

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a request brings: state, its parts, and where to put response headers.
pub struct RequestCtx {
    pub state: AppState,
    pub parts: Parts,
    pub response: Option<leptos_axum::ResponseOptions>,
}

impl RequestCtx {
    pub fn current() -> Result<Self, ApiError> {
        Ok(Self {
            state: app_state()?,
            parts: super::principal::request_parts()?,
            response: leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        })
    }

    fn set_cookie(&self, value: String) {
        if let (Some(response), Ok(value)) = (&self.response, http::HeaderValue::from_str(&value)) {
            response.append_header(http::header::SET_COOKIE, value);
        }
    }

    fn secure_cookies(&self) -> bool {
        self.state.settings.public_url.starts_with("https://")
    }
}

/// Lower-cases and trims; rejects what cannot be an address.
pub fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && email.matches('@').count() == 1
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    if !valid {
        return Err(ApiError::field("email", "enter a valid email address"));
    }
    Ok(email.to_lowercase())
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::field(
            "password",
            format!("use at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::field("password", "that password is too long"));
    }
    Ok(())
}

pub async fn sign_up(
    ctx: &RequestCtx,
    email: &str,
    password: &str,
) -> Result<CurrentUser, ApiError> {
    check_origin(&ctx.parts.headers, &ctx.state.settings.public_url)?;
    let ip = client_ip(&ctx.parts, ctx.state.settings.trusted_proxies);
    ratelimit::hit(
        &ctx.state.db,
        &format!("sign-up:ip:{ip}"),
        ratelimit::SIGN_UP_PER_IP,
    )
    .await?;
    let normalized = normalize_email(email)?;
    check_password(password)?;
    let hash = password::hash(password.to_owned())
        .await
        .map_err(internal)?;
    let admin = ctx.state.settings.is_admin_email(&normalized);
    create_user(&ctx.state.db, email.trim(), &normalized, Some(&hash), admin).await
}

/// Inserts a user; the first account on a fresh installation becomes an administrator, and so
/// does one made with `admin` (its email is in `admin_emails`).
pub async fn create_user(
    db: &sqlx::PgPool,
    email: &str,
    normalized: &str,
    password_hash: Option<&str>,
    admin: bool,
) -> Result<CurrentUser, ApiError> {
    let id = Uuid::now_v7();
    let result: Result<(bool,), sqlx::Error> = sqlx::query_as(
        "INSERT INTO users (id, email, email_normalized, password_hash, is_admin)
         VALUES ($1, $2, $3, $4, $5 OR NOT EXISTS (SELECT 1 FROM users))
         RETURNING is_admin",
    )
    .bind(id)
    .bind(email)
    .bind(normalized)
    .bind(password_hash)
    .bind(admin)
    .fetch_one(db)
    .await;
    match result {
        Ok((is_admin,)) => Ok(CurrentUser {
            id,
            email: email.to_owned(),
            is_admin,
        }),
        Err(error) if constraint(&error) == Some("users_email_key") => Err(ApiError::Conflict {
            message: "an account with this email already exists".into(),
        }),
        Err(error) => Err(internal(
            anyhow::Error::new(error).context("failed to create a user"),
        )),
    }
}

/// The name of the violated constraint, if the error is one.
pub fn constraint(error: &sqlx::Error) -> Option<&str> {
    error.as_database_error().and_then(|e| e.constraint())
}

pub async fn sign_in(
    ctx: &RequestCtx,
    email: &str,
    password: &str,
) -> Result<CurrentUser, ApiError> {
    check_origin(&ctx.parts.headers, &ctx.state.settings.public_url)?;
    let ip = client_ip(&ctx.parts, ctx.state.settings.trusted_proxies);
    let db = &ctx.state.db;
    ratelimit::hit(db, &format!("sign-in:ip:{ip}"), ratelimit::SIGN_IN_PER_IP).await?;
    let normalized = normalize_email(email).map_err(|_| wrong_credentials())?;
    let account_key = format!("sign-in:account:{normalized}");
    ratelimit::hit(db, &account_key, ratelimit::SIGN_IN_PER_ACCOUNT).await?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(wrong_credentials());
    }
    let row: Option<(Uuid, String, Option<String>, bool)> = sqlx::query_as(
        "SELECT id, email, password_hash, is_admin FROM users WHERE email_normalized = $1",
    )
    .bind(&normalized)
    .fetch_optional(db)
    .await
    .context("failed to look up a user")
    .map_err(internal)?;
    let hash = row.as_ref().and_then(|(_, _, hash, _)| hash.clone());
    let ok = password::verify(password.to_owned(), hash)
        .await
        .map_err(internal)?;
    match row {
        Some((id, email, _, is_admin)) if ok => {
            ratelimit::reset(db, &account_key).await?;
            Ok(CurrentUser {
                id,
                email,
                is_admin,
            })
        }
        _ => Err(wrong_credentials()),
    }
}

fn wrong_credentials() -> ApiError {
    ApiError::validation("wrong email or password")
}

pub async fn start_web_session(ctx: &RequestCtx, user_id: Uuid) -> Result<(), ApiError> {
    let lifetime = ctx.state.settings.web_session_idle();
    let token = sessions::create(&ctx.state.db, user_id, SessionKind::Web, lifetime, true).await?;
    ctx.set_cookie(sessions::cookie(
        &token,
        i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        ctx.secure_cookies(),
    ));
    Ok(())
}

pub async fn sign_out(ctx: &RequestCtx) -> Result<(), ApiError> {
    if let Some(token) = sessions::token_from_cookies(&ctx.parts.headers) {
        check_origin(&ctx.parts.headers, &ctx.state.settings.public_url)?;
        sessions::delete(&ctx.state.db, &token).await?;
    }
    if let Some(token) = ctx
        .parts
        .headers
        .get(sessions::SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
    {
        sessions::delete(&ctx.state.db, token).await?;
    }
    ctx.set_cookie(sessions::clear_cookie(ctx.secure_cookies()));
    Ok(())
}

pub async fn find_user(db: &sqlx::PgPool, user_id: Uuid) -> Result<Option<CurrentUser>, ApiError> {
    let row: Option<(Uuid, String, bool)> =
        sqlx::query_as("SELECT id, email, is_admin FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(db)
            .await
            .context("failed to load a user")
            .map_err(internal)?;
    Ok(row.map(|(id, email, is_admin)| CurrentUser {
        id,
        email,
        is_admin,
    }))
}

/// Verifies the raw initData Telegram handed a Mini App. Data older than the window reads as
/// `init_data_expired` (reopen the Mini App); anything else wrong as `unauthenticated`.
pub fn verify_init_data(
    state: &AppState,
    raw: &str,
    now: i64,
) -> Result<super::init_data::InitData, ApiError> {
    use secrecy::ExposeSecret;

    let Some(bot_token) = state.settings.telegram_bot_token.as_ref() else {
        tracing::warn!("Mini App sign-in refused: telegram_bot_token is not configured");
        return Err(ApiError::Unavailable);
    };
    let public_key = match state.settings.telegram_initdata_public_key.as_deref() {
        Some(hex_key) => Some(parse_public_key(hex_key).map_err(internal)?),
        None => None,
    };
    let bot_id: i64 = bot_token
        .expose_secret()
        .split(':')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let verifier = super::init_data::Verifier {
        bot_token: bot_token.expose_secret(),
        max_age_secs: state.settings.initdata_max_age_secs,
        ed25519: public_key.as_ref().map(|key| (key, bot_id)),
    };
    verifier.verify(raw, now).map_err(|error| {
        tracing::info!(%error, "Mini App initData rejected");
        match error {
            super::init_data::InitDataError::Expired => ApiError::InitDataExpired,
            _ => ApiError::Unauthenticated,
        }
    })
}

/// Verifies initData, records the Telegram user, and opens a fixed-lifetime session for the
/// linked account. Unlinked users get `telegram_not_linked`, which the Mini App turns into a
/// way forward (link or create an account).
pub async fn miniapp_sign_in(
    state: &AppState,
    raw: &str,
    now: i64,
) -> Result<super::MiniAppSession, ApiError> {
    let data = verify_init_data(state, raw, now)?;
    let user = &data.user;
    let lifetime = state.settings.miniapp_session();
    let token = sessions::new_token();
    // One round trip: record the Telegram user, open a session when it is linked, and read the
    // account it is linked to.
    let row: (Option<Uuid>, Option<String>, Option<bool>) = sqlx::query_as(
        "WITH tg AS (
           INSERT INTO telegram_accounts
             (telegram_user_id, username, first_name, last_name, language_code)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (telegram_user_id) DO UPDATE SET
             username = EXCLUDED.username, first_name = EXCLUDED.first_name,
             last_name = EXCLUDED.last_name, language_code = EXCLUDED.language_code,
             last_seen_at = now()
           RETURNING user_id
         ), session AS (
           INSERT INTO sessions (token_hash, user_id, kind, expires_at, sliding)
           SELECT $6, tg.user_id, 'miniapp', now() + make_interval(secs => $7), false
           FROM tg WHERE tg.user_id IS NOT NULL
           RETURNING user_id
         )
         SELECT u.id, u.email, u.is_admin
         FROM tg LEFT JOIN users u ON u.id = tg.user_id",
    )
    .bind(user.id)
    .bind(clip_name(user.username.as_deref()))
    .bind(clip_name(Some(&user.first_name)).unwrap_or_default())
    .bind(clip_name(user.last_name.as_deref()))
    .bind(
        user.language_code
            .as_deref()
            .map(|c| c.chars().take(8).collect::<String>()),
    )
    .bind(sessions::token_hash(&token))
    .bind(lifetime.as_secs_f64())
    .fetch_one(&state.db)
    .await
    .context("failed to record a Telegram user and open a Mini App session")
    .map_err(internal)?;
    let (Some(id), Some(email), Some(is_admin)) = row else {
        return Err(ApiError::TelegramNotLinked);
    };
    Ok(miniapp_session(
        state,
        token,
        CurrentUser {
            id,
            email,
            is_admin,
        },
    ))
}

fn clip_name(value: Option<&str>) -> Option<String> {
    value.map(|v| v.chars().take(64).collect())
}

fn miniapp_session(state: &AppState, token: String, user: CurrentUser) -> super::MiniAppSession {
    let lifetime = state.settings.miniapp_session();
    super::MiniAppSession {
        token,
        expires_in_secs: i64::try_from(lifetime.as_secs()).unwrap_or(900),
        user,
    }
}

/// An unlinked Telegram user in the Mini App: signs in to an existing account (or creates
/// one), links it to the Telegram user the initData proves, and opens a Mini App session, in
/// one step. Sign-in and sign-up keep their rate limits and checks.
pub async fn miniapp_connect(
    ctx: &RequestCtx,
    raw: &str,
    email: &str,
    password: &str,
    create: bool,
    now: i64,
) -> Result<super::MiniAppSession, ApiError> {
    let data = verify_init_data(&ctx.state, raw, now)?;
    let user = if create {
        sign_up(ctx, email, password).await?
    } else {
        sign_in(ctx, email, password).await?
    };
    let tg = &data.user;
    sqlx::query(
        "INSERT INTO telegram_accounts
           (telegram_user_id, username, first_name, last_name, language_code)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (telegram_user_id) DO UPDATE SET
           username = EXCLUDED.username, first_name = EXCLUDED.first_name,
           last_name = EXCLUDED.last_name, language_code = EXCLUDED.language_code,
           last_seen_at = now()",
    )
    .bind(tg.id)
    .bind(clip_name(tg.username.as_deref()))
    .bind(clip_name(Some(&tg.first_name)).unwrap_or_default())
    .bind(clip_name(tg.last_name.as_deref()))
    .bind(
        tg.language_code
            .as_deref()
            .map(|c| c.chars().take(8).collect::<String>()),
    )
    .execute(&ctx.state.db)
    .await
    .context("failed to record a Telegram user")
    .map_err(internal)?;
    crate::telegram::link::service::link_accounts(&ctx.state, tg.id, user.id).await?;
    tracing::info!(user_id = %user.id, created = create, "Telegram account linked from the Mini App");
    let lifetime = ctx.state.settings.miniapp_session();
    let token = sessions::create(
        &ctx.state.db,
        user.id,
        SessionKind::MiniApp,
        lifetime,
        false,
    )
    .await?;
    Ok(miniapp_session(&ctx.state, token, user))
}

fn parse_public_key(hex_key: &str) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key.trim(), &mut bytes)
        .context("telegram_initdata_public_key is not 64 hex digits")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .context("telegram_initdata_public_key is not an Ed25519 key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_nonsense_is_rejected() {
        assert_eq!(
            normalize_email("  Ann@Example.ORG ").expect("ok"),
            "ann@example.org"
        );
        for bad in [
            "",
            "ann",
            "@x.org",
            "ann@",
            "ann@org",
            "a b@x.org",
            "a@@x.org",
            "<a>@x.org",
            "a@x.org.",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        assert!(normalize_email(&format!("{}@x.org", "a".repeat(260))).is_err());
    }
}
