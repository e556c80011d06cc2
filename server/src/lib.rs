//! The Dossier server: typed start-up, the axum router (Leptos pages, server functions,
//! health, metrics) and, in later modules, the pipeline workers.

pub mod admission;
pub mod headers;
pub mod pipeline;
pub mod settings;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use app::config::Settings;
use app::events::Subjects;
use app::state::AppState;
use app::{App, shell};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;

/// The migrations in `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The oldest NATS server with the KV and JetStream features Dossier relies on.
const MIN_NATS_VERSION: (u64, u64) = (2, 11);

/// Connects to PostgreSQL (creating the database when it is missing) and applies migrations.
pub async fn connect_database(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    let url = settings.database_url.expose_secret();
    if !sqlx::Postgres::database_exists(url)
        .await
        .context("failed to reach PostgreSQL")?
    {
        sqlx::Postgres::create_database(url)
            .await
            .context("failed to create the database")?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .context("failed to connect to PostgreSQL")?;
    MIGRATOR
        .run(&pool)
        .await
        .context("failed to apply migrations")?;
    Ok(pool)
}

/// Connects to NATS and refuses servers too old for JetStream KV as Dossier uses it.
pub async fn connect_nats(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("failed to connect to NATS at {url}"))?;
    let version = client.server_info().version;
    if !nats_version_at_least(&version, MIN_NATS_VERSION) {
        anyhow::bail!(
            "NATS server {version} at {url} is too old: Dossier needs {}.{} or newer with JetStream \
             (run `make services` to start a suitable one)",
            MIN_NATS_VERSION.0,
            MIN_NATS_VERSION.1
        );
    }
    Ok(client)
}

fn nats_version_at_least(version: &str, (major, minor): (u64, u64)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= (major, minor)
}

/// Leptos' options, derived from our settings rather than from its own environment variables.
pub fn leptos_options(settings: &Settings) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("dossier")
        .site_root(settings.site_root.to_string_lossy().as_ref())
        .site_pkg_dir(settings.site_pkg_dir.as_str())
        .site_addr(settings.listen_addr)
        .build()
}

/// How long the server waits at start-up for PostgreSQL or NATS (restarting, or started
/// after the server) before it gives up.
pub const START_WAIT: Duration = Duration::from_secs(60);

/// Runs `attempt` until it succeeds, every second for up to `START_WAIT`.
async fn until_up<T, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + START_WAIT;
    let mut logged = false;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(
                    error.context(format!("{what} could not be reached for {START_WAIT:?}"))
                );
            }
            Err(error) => {
                if !logged {
                    tracing::warn!(error = %format!("{error:#}"), "{what} cannot be reached yet; waiting");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Builds the state from live connections, waiting for PostgreSQL and NATS while they start.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let db = until_up("PostgreSQL", || connect_database(&settings)).await?;
    let nats = until_up("NATS", || {
        connect_nats(&settings.nats_url, "dossier-server")
    })
    .await?;
    state_from_parts(settings, db, nats)
}

pub fn state_from_parts(
    settings: Settings,
    db: sqlx::PgPool,
    nats: async_nats::Client,
) -> anyhow::Result<AppState> {
    let webauthn =
        app::auth::passkeys::store::relying_party(&settings.public_url, settings.public_host())
            .map(Arc::new);
    if webauthn.is_none() {
        tracing::warn!(
            public_url = %settings.public_url,
            "passkeys are off: public_url must name a host (e.g. http://localhost:3000), not an IP address"
        );
    }
    let objects = app::documents::storage::from_settings(&settings)?;
    let ollama = match &settings.ollama_url {
        Some(url) => Some(Arc::new(app::adapters::ollama::OllamaClient::new(
            url,
            &settings.ollama,
        )?)),
        None => None,
    };
    let remote_embedder: Option<Arc<dyn app::documents::embed::Embedder>> =
        match (&ollama, &settings.ollama.embed_model) {
            (Some(client), Some(model)) => Some(Arc::new(
                app::adapters::ollama::OllamaEmbedder::new(client.clone(), model.clone()),
            )),
            _ => None,
        };
    let qdrant = match &settings.qdrant_url {
        Some(url) => Some(Arc::new(app::adapters::qdrant::QdrantIndex::new(
            url,
            settings.qdrant_api_key.as_ref(),
            &settings.env,
        )?)),
        None => None,
    };
    let models = Arc::new(app::documents::pipeline::Models::new(
        settings.model_dir.clone(),
        remote_embedder,
    ));
    Ok(AppState {
        ollama,
        qdrant,
        vectors: Arc::new(app::rag::retrieve::VectorCache::default()),
        webauthn,
        objects,
        models,
        traffic: Arc::default(),
        streams: Arc::new(tokio::sync::OnceCell::new()),
        jetstream: async_nats::jetstream::new(nats.clone()),
        subjects: Subjects::new(settings.env.clone()),
        leptos_options: leptos_options(&settings),
        settings: Arc::new(settings),
        db,
        nats,
    })
}

/// The operator's port: `/metrics` and `/healthz`, on `metrics_listen` (never the public
/// port: what the server counts is nobody else's business).
pub fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .layer(Extension(telemetry::prometheus()))
}

/// The whole public HTTP surface.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    // The recorder is installed before the first request is counted.
    let _ = telemetry::prometheus();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/documents/{id}/file",
            get(app::documents::service::download),
        )
        .route("/admin/traffic/events", get(app::admin::traffic::events))
        .route(
            "/account/export/{token}",
            get(app::account::service::download_export),
        )
        .leptos_routes_with_context(
            &state,
            routes,
            {
                let state = state.clone();
                move || provide_context(state.clone())
            },
            {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn(
            app::documents::service::require_multipart,
        ))
        .layer(axum::middleware::from_fn(request_errors_are_400))
        // Signed service calls are verified (signature, skew, nonce) before any handler runs.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            app::auth::service_calls::verify_service_calls,
        ))
        // Costly calls beyond the server's slots are shed before anything (even the signed
        // body's buffering) happens.
        .layer(axum::middleware::from_fn_with_state(
            admission::Admission::new(&state.settings.admission),
            admission::admit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            headers::Https(state.settings.public_url.starts_with("https://")),
            headers::security_headers,
        ))
        .layer(axum::middleware::from_fn(telemetry::track_http))
        .with_state(state)
}

/// server_fn answers a body it cannot decode (not JSON, not UTF-8, the wrong shape) with 500
/// before the function runs, so `error::respond` never sees it: such an answer, an `ApiError`
/// with code `request`, is the client's mistake and becomes 400.
async fn request_errors_are_400(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    if !is_api || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
    };
    if matches!(
        serde_json::from_slice::<app::error::ApiError>(&bytes),
        Ok(app::error::ApiError::Request { .. })
    ) {
        parts.status = StatusCode::BAD_REQUEST;
    }
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: PostgreSQL and NATS both answer within their probe timeouts.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let report = app::system::service::probe(&state).await;
    let status = if report.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

async fn metrics_text(Extension(handle): Extension<PrometheusHandle>) -> impl IntoResponse {
    prom::render(&handle)
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests.
pub async fn serve(state: AppState) -> anyhow::Result<()> {
    let addr = state.settings.listen_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    tracing::info!(%addr, public_url = %state.settings.public_url, "listening");
    // The metrics listener lives as long as this function (a set it owns).
    let mut operator = tokio::task::JoinSet::new();
    if let Some(metrics_addr) = state.settings.metrics_addr().map_err(anyhow::Error::msg)? {
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("failed to listen on {metrics_addr} for /metrics"))?;
        tracing::info!(addr = %metrics_addr, "metrics listening");
        operator.spawn(async move {
            if let Err(error) = axum::serve(listener, metrics_router())
                .with_graceful_shutdown(shutdown_signal())
                .await
            {
                tracing::warn!(%error, "the metrics listener failed");
            }
        });
    }
    tokio::spawn(janitor(state.db.clone()));
    let stop_workers = tokio_util::sync::CancellationToken::new();
    let workers = if state.settings.documents.workers {
        pipeline::start(state.clone(), stop_workers.clone())
            .await
            .context("failed to start the document pipeline")?
    } else {
        Vec::new()
    };
    // After the workers, so the first reading already sees their consumers.
    tokio::spawn(telemetry::sample_queues(state.jetstream.clone()));
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed");
    // Messages in flight are not acknowledged and come back to the next worker.
    stop_workers.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    served
}

/// Deletes expired sessions, nonces, ceremonies and rate-limit windows every ten minutes.
async fn janitor(db: sqlx::PgPool) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(error) = sweep(&db).await {
            tracing::warn!(error = ?error, "janitor sweep failed");
        }
    }
}

/// One janitor pass; returns how many rows it deleted.
pub async fn sweep(db: &sqlx::PgPool) -> anyhow::Result<u64> {
    let mut deleted = 0;
    for statement in [
        "DELETE FROM sessions WHERE expires_at < now()",
        "DELETE FROM service_nonces WHERE expires_at < now()",
        "DELETE FROM webauthn_ceremonies WHERE expires_at < now()",
        "DELETE FROM rate_limits WHERE window_start < now() - interval '1 day'",
        "DELETE FROM telegram_updates WHERE claimed_at < now() - interval '2 days'",
        "DELETE FROM notification_claims WHERE claimed_at < now() - interval '2 days'",
    ] {
        deleted += sqlx::query(statement)
            .execute(db)
            .await
            .with_context(|| format!("failed to run {statement:?}"))?
            .rows_affected();
    }
    Ok(deleted)
}

/// Resolves on SIGINT (ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_versions_compare_numerically() {
        assert!(nats_version_at_least("2.15.1", (2, 11)));
        assert!(nats_version_at_least("2.11.0", (2, 11)));
        assert!(nats_version_at_least("v3.0.0-beta", (2, 11)));
        assert!(!nats_version_at_least("2.9.10", (2, 11)));
        assert!(!nats_version_at_least("garbage", (2, 11)));
    }
}
