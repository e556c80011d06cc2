//! Logging and Prometheus metrics.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use app::config::LogFormat;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber (`RUST_LOG` filters, default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second initialisation (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder (shared with the bot's crate).
pub use prom::prometheus;

/// Counts every HTTP request and times it, labelled by route template (never the raw path,
/// which would carry ids and make the label set unbounded).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let server_fn = server_fn_name(request.uri().path());
    let response = next.run(request).await;
    let took = started.elapsed().as_secs_f64();
    let status = response.status();
    if let Some(name) = server_fn {
        let result = if status.is_server_error() {
            "server_error"
        } else if status.is_client_error() {
            "client_error"
        } else {
            "ok"
        };
        metrics::counter!("dossier_server_fn_calls_total", "fn" => name, "result" => result)
            .increment(1);
        metrics::histogram!("dossier_server_fn_duration_seconds", "fn" => name).record(took);
    }
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2]).record(took);
    response
}

/// The server function a path calls (`auth/sign-in` for `/api/auth/sign-in`), if it names a
/// registered one: any other path under `/api/` must not become a label value.
fn server_fn_name(path: &str) -> Option<&'static str> {
    static PATHS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    if !path.starts_with("/api/") {
        return None;
    }
    let paths = PATHS.get_or_init(|| {
        leptos::server_fn::axum::server_fn_paths()
            .map(|(path, _)| path)
            .collect()
    });
    paths
        .get(path)
        .copied()
        .map(|known| known.strip_prefix("/api/").unwrap_or(known))
}

/// Queue depth per durable JetStream consumer (pipeline stages, the bot's notification worker),
/// every 15 s: `dossier_jetstream_consumer_pending` and `…_ack_pending`.
pub async fn sample_queues(jetstream: async_nats::jetstream::Context) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tick.tick().await;
        if let Err(error) = record_queue_depths(&jetstream).await {
            tracing::warn!(error = ?error, "queue depths could not be read");
        }
    }
}

/// One reading of every durable consumer's queue depth; returns how many were recorded.
pub async fn record_queue_depths(
    jetstream: &async_nats::jetstream::Context,
) -> anyhow::Result<usize> {
    let lags = app::admin::traffic::consumer_lags(jetstream).await?;
    let mut recorded = 0;
    // Ephemeral consumers have random names: only durable ones become label values.
    for lag in lags.into_iter().filter(|lag| lag.durable) {
        let labels = [("stream", lag.stream), ("consumer", lag.consumer)];
        metrics::gauge!("dossier_jetstream_consumer_pending", &labels).set(lag.pending as f64);
        metrics::gauge!("dossier_jetstream_consumer_ack_pending", &labels)
            .set(lag.ack_pending as f64);
        recorded += 1;
    }
    Ok(recorded)
}
