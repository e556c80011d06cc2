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
pub fn internal(error: anyhow::Error) -> ApiError {
    let incident = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    tracing::error!(incident = %incident, error = ?error, "internal error");
    ApiError::Internal { incident }
}
