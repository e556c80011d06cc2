//! The one `AppState`, built at start-up by `server` and handed to server functions through
//! Leptos context (never a global, so every test can bring its own database).

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::*;

use crate::config::Settings;
use crate::error::ApiError;
use crate::events::Subjects;

#[derive(Clone)]
pub struct AppState {
    pub db: sqlx::PgPool,
    pub nats: async_nats::Client,
    pub jetstream: async_nats::jetstream::Context,
    pub settings: Arc<Settings>,
    pub subjects: Subjects,
    pub leptos_options: LeptosOptions,
    /// The WebAuthn relying party; `None` (passkeys off) when `public_url` has no host name.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// Where documents' files live: local files or S3.
    pub objects: Arc<dyn object_store::ObjectStore>,
    /// The embedding model (loaded on first use, or Ollama's when configured).
    pub models: Arc<crate::documents::pipeline::Models>,
    /// Ollama, when `ollama_url` is set: classification, extraction and answers.
    pub ollama: Option<Arc<crate::adapters::ollama::OllamaClient>>,
    /// Qdrant, when `qdrant_url` is set: chunk vectors are upserted and searched there.
    pub qdrant: Option<Arc<crate::adapters::qdrant::QdrantIndex>>,
    /// People's vectors in memory for the embedded search.
    pub vectors: Arc<crate::rag::retrieve::VectorCache>,
    /// Live NATS traffic counts for the administrators' page (started on first view).
    pub traffic: Arc<crate::admin::traffic::Traffic>,
    /// Set once this process made sure the JetStream streams exist.
    pub streams: Arc<tokio::sync::OnceCell<()>>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The state inside a server function. Missing context is a wiring bug, reported as internal.
pub fn app_state() -> Result<AppState, ApiError> {
    use_context::<AppState>()
        .ok_or_else(|| internal(anyhow::anyhow!("AppState missing from context")))
}

/// Logs the full error chain under a fresh incident id and returns the wire error that names it.
/// A failure to reach PostgreSQL (restarting, connection cut, pool exhausted) is no incident:
/// it is `Unavailable`, which callers may retry.
pub fn internal(error: anyhow::Error) -> ApiError {
    if let Some(cause) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .filter(|cause| database_unreachable(cause))
    {
        tracing::warn!(error = %cause, context = %error, "the database is unreachable");
        return ApiError::Unavailable;
    }
    let incident = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    tracing::error!(incident = %incident, error = ?error, "internal error");
    ApiError::Internal { incident }
}

/// Whether a database error means "PostgreSQL cannot be reached or is restarting" (worth a
/// retry) rather than a bug: the connection broke, none could be made or had in time, the
/// server is shutting down or starting up (SQLSTATE classes 08 and 57P, too many connections),
/// or the transaction lost a serialization race or a deadlock.
pub fn database_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("57P")
                || matches!(code.as_ref(), "53300" | "40001" | "40P01")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    fn failed(error: sqlx::Error) -> ApiError {
        Err::<(), _>(error)
            .context("failed to do a thing")
            .map_err(internal)
            .expect_err("an error")
    }

    #[test]
    fn an_unreachable_database_is_unavailable_and_anything_else_an_incident() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(failed(sqlx::Error::Io(reset)), ApiError::Unavailable);
        assert_eq!(failed(sqlx::Error::PoolTimedOut), ApiError::Unavailable);
        assert_eq!(failed(sqlx::Error::PoolClosed), ApiError::Unavailable);
        assert!(matches!(
            failed(sqlx::Error::RowNotFound),
            ApiError::Internal { .. }
        ));
        assert!(matches!(
            failed(sqlx::Error::ColumnNotFound("x".into())),
            ApiError::Internal { .. }
        ));
        assert!(matches!(
            internal(anyhow::anyhow!("a plain bug")),
            ApiError::Internal { .. }
        ));
    }
}
