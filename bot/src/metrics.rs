//! The bot's Prometheus metrics and its own small HTTP listener (`/metrics`, `/healthz`).
//! Label values are fixed sets (update kinds, Bot API method names, server-function
//! endpoints named in this crate, outcomes): never a user, chat or message id.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use teloxide::RequestError;
use teloxide::requests::{Output, Payload, Request};
use teloxide::types::{Update, UpdateKind};
use tokio_util::sync::CancellationToken;

/// What kind of update this is, for `dossier_bot_updates_total{kind}`.
pub fn update_kind(update: &Update) -> &'static str {
    match &update.kind {
        UpdateKind::Message(message) => {
            if message.text().is_some_and(|text| text.starts_with('/')) {
                "command"
            } else if message.text().is_some() {
                "text"
            } else if message.document().is_some() {
                "document"
            } else if message.photo().is_some() {
                "photo"
            } else {
                "other_message"
            }
        }
        UpdateKind::CallbackQuery(_) => "callback_query",
        UpdateKind::Error(_) => "unparsed",
        _ => "other",
    }
}

/// One handled update: `dossier_bot_updates_total{kind,result}` and
/// `dossier_bot_update_duration_seconds{kind}`.
pub fn update_handled(kind: &'static str, took: Duration, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!("dossier_bot_updates_total", "kind" => kind, "result" => result).increment(1);
    metrics::histogram!("dossier_bot_update_duration_seconds", "kind" => kind)
        .record(took.as_secs_f64());
}

/// Sends a Bot API request once and records it: `dossier_telegram_requests_total{method,result}`,
/// `dossier_telegram_request_duration_seconds{method}` and, for a 429,
/// `dossier_telegram_rate_limited_total{method}`.
pub async fn observed<R>(request: &R) -> Result<Output<R>, RequestError>
where
    R: Request<Err = RequestError>,
{
    let method = <R::Payload as Payload>::NAME;
    let started = Instant::now();
    let result = request.send_ref().await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(RequestError::RetryAfter(_)) => {
            metrics::counter!("dossier_telegram_rate_limited_total", "method" => method)
                .increment(1);
            "retry_after"
        }
        Err(RequestError::Api(_)) => "api_error",
        Err(RequestError::Network(_)) => "network_error",
        Err(_) => "other_error",
    };
    metrics::counter!("dossier_telegram_requests_total", "method" => method, "result" => outcome)
        .increment(1);
    metrics::histogram!("dossier_telegram_request_duration_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
    result
}

/// Sends a Bot API request (not paced) and records it; for calls that are not messages to a
/// chat (`getUpdates`, `answerCallbackQuery`, chat actions).
pub async fn send<R>(request: R) -> Result<Output<R>, RequestError>
where
    R: Request<Err = RequestError>,
{
    observed(&request).await
}

/// A notification's fate: `sent`, `duplicate` (claimed before), `failed` (Telegram refused),
/// `retried` (could not be claimed yet), `dropped` (undecodable).
pub fn notification(result: &'static str) {
    metrics::counter!("dossier_bot_notifications_total", "result" => result).increment(1);
}

/// A signed call to the Dossier API: `dossier_bot_api_calls_total{endpoint,result}` and
/// `dossier_bot_api_call_duration_seconds{endpoint}`. `endpoint` is one of this crate's
/// literal endpoint names (or `download`).
pub fn api_call<T>(endpoint: &str, took: Duration, result: &Result<T, app::error::ApiError>) {
    let result = match result {
        Ok(_) => "ok",
        Err(error) => error.code(),
    };
    let endpoint = endpoint.to_owned();
    metrics::counter!("dossier_bot_api_calls_total", "endpoint" => endpoint.clone(), "result" => result)
        .increment(1);
    metrics::histogram!("dossier_bot_api_call_duration_seconds", "endpoint" => endpoint)
        .record(took.as_secs_f64());
}

/// The listener's routes.
pub fn router() -> Router {
    let handle = prom::prometheus();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move { prom::render(&handle) }
            }),
        )
}

/// Serves `/metrics` and `/healthz` on `addr` until `shutdown`.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr} for /metrics"))?;
    tracing::info!(%addr, "metrics and health listening");
    axum::serve(listener, router())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("the metrics listener failed")
}
