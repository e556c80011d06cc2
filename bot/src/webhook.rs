//! Webhook mode: the bot's own HTTP listener receives Telegram's POSTs. A request without the
//! right `X-Telegram-Bot-Api-Secret-Token` (compared in constant time) is refused with 401.
//! An update is answered 200 only after it was claimed and handled; if the API is down, 503
//! makes Telegram deliver it again later. Several replicas can serve the same webhook URL.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use teloxide::prelude::*;
use teloxide::types::AllowedUpdate;
use tokio_util::sync::CancellationToken;

use crate::config::WebhookConfig;
use crate::{Ctx, DRAIN, polling};

pub const PATH: &str = "/telegram/webhook";
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

#[derive(Clone)]
struct Hook {
    ctx: Arc<Ctx>,
    secret: Arc<[u8]>,
    shutdown: CancellationToken,
}

/// A claimed, unfinished update is taken over from another replica after this long.
const TAKEOVER_AFTER_SECS: u32 = 120;

async fn receive(State(hook): State<Hook>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(given.ct_eq(&hook.secret)) {
        tracing::warn!("a webhook request without the right secret was refused");
        return StatusCode::UNAUTHORIZED;
    }
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            tracing::warn!(%error, "an undecodable webhook update was dropped");
            // Telegram would resend forever; the update cannot be handled anyway.
            return StatusCode::OK;
        }
    };
    // Another replica may still be handling a redelivered update: take it over only once its
    // claim is older than any handler runs.
    let Some(claimed) = polling::claim(&hook.ctx, vec![update], TAKEOVER_AFTER_SECS).await else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    if claimed.busy > 0 {
        // Telegram delivers it again later.
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if polling::handle_batch(&hook.ctx, claimed.handle, &hook.shutdown)
        .await
        .is_empty()
    {
        StatusCode::OK
    } else {
        // Not marked handled: Telegram delivers it again, and it is taken over once the claim
        // is old enough.
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The listener's router (exposed for tests).
pub fn router(ctx: Arc<Ctx>, secret: &str, shutdown: CancellationToken) -> Router {
    Router::new().route(PATH, post(receive)).with_state(Hook {
        ctx,
        secret: Arc::from(secret.as_bytes()),
        shutdown,
    })
}

pub async fn run(
    raw: Bot,
    ctx: Arc<Ctx>,
    config: WebhookConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "webhook listener up");
    raw.set_webhook(config.url.clone())
        .secret_token(config.secret.expose_secret().to_owned())
        .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery])
        .await?;
    let app = router(ctx, config.secret.expose_secret(), shutdown.clone());
    let stop = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.cancelled().await;
    });
    // Owned by this future: a dropped bot stops listening.
    let mut served = tokio::task::JoinSet::new();
    served.spawn(async move { server.await });
    shutdown.cancelled().await;
    // In-flight requests get the drain period (plus a little for the answers to go out).
    match tokio::time::timeout(
        DRAIN + std::time::Duration::from_millis(500),
        served.join_next(),
    )
    .await
    {
        Ok(Some(Ok(Ok(())))) | Ok(None) => {}
        Ok(Some(Ok(Err(error)))) => tracing::warn!(%error, "the webhook listener failed"),
        Ok(Some(Err(error))) => tracing::warn!(%error, "the webhook listener panicked"),
        Err(_) => tracing::warn!("webhook requests still running after the drain period"),
    }
    Ok(())
}
