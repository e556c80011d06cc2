//! Questions about one's own documents: retrieval over the caller's chunks only (vectors and
//! full-text, fused), then an answer that proves itself: quoted passages (no LLM configured)
//! or an Ollama answer citing [1], [2], each source naming its document and page.

#[cfg(feature = "ssr")]
pub mod answer;
#[cfg(feature = "ssr")]
pub mod retrieve;
#[cfg(feature = "ssr")]
pub mod service;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;

/// The longest question accepted.
pub const MAX_QUESTION_CHARS: usize = 1000;

/// A document an answer rests on. `n` is the number cited as `[n]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub n: u32,
    pub document_id: Uuid,
    pub file_name: String,
    pub page: u32,
    /// The fused retrieval score (higher is better).
    pub score: f32,
}

/// A quoted piece of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    pub source: u32,
    pub text: String,
}

/// What `rag/ask` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Nothing relevant was found: say so, never invent.
    pub found: bool,
    /// The model's answer (with [n] citations), when an LLM wrote it.
    pub generated: Option<String>,
    /// Quoted passages: the extractive answer, and the evidence under a generated one.
    pub passages: Vec<Passage>,
    pub sources: Vec<Source>,
    /// Served from the answer cache.
    pub cached: bool,
}

/// Asks a question about the caller's documents. With `stream` (a client-chosen id of 16–64
/// characters `[A-Za-z0-9_-]`), a generated answer's pieces are also published as they come
/// on NATS `{env}.rag.answers.<stream>`, so the bot can show it growing.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "rag/ask", input = Json)]
pub async fn ask(question: String, stream: Option<String>) -> Result<Answer, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize};
            let caller = authorize(Permission::RagQuery).await?;
            let state = crate::state::app_state()?;
            service::ask(&state, caller.user_id, &question, stream.as_deref()).await
        }
        .await,
    )
}
