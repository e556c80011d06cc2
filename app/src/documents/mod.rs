//! Documents: stored files and what the pipeline learns about them.
//!
//! Upload (web form or the bot, the same multipart server function) stores the file through
//! `object_store`, records it and queues the first stage; the pipeline (`pipeline`, driven by
//! the server's JetStream workers) reads text, classifies, extracts fields and embeds chunks.

pub mod classify;
pub mod fields;
pub mod names;

#[cfg(feature = "ssr")]
pub mod bert;
#[cfg(feature = "ssr")]
pub mod chunk;
#[cfg(feature = "ssr")]
pub mod embed;
#[cfg(feature = "ssr")]
pub mod llm;
#[cfg(feature = "ssr")]
pub mod pipeline;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod storage;
#[cfg(feature = "ssr")]
pub mod text;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::{Json, MultipartData, MultipartFormData};
use uuid::Uuid;

use crate::documents::classify::DocType;
use crate::documents::fields::Fields;
use crate::error::ApiError;

/// Where a document is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocStatus {
    /// Stored, waiting for the pipeline.
    Queued,
    Processing,
    Processed,
    /// A stage failed for good; `failure_reason` says why.
    Failed,
    /// A kind of file Dossier does not read; kept, with the reason.
    Unsupported,
}

impl DocStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::Unsupported => "unsupported",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Processing,
            Self::Processed,
            Self::Failed,
            Self::Unsupported,
        ]
        .into_iter()
        .find(|status| status.as_str() == value)
    }

    /// Still on its way through the pipeline.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Queued | Self::Processing)
    }
}

/// A document as its owner sees it in lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentSummary {
    pub id: Uuid,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// Stored files: 1, or the number of photos of an album.
    pub files: u32,
    pub pages: Option<u32>,
    pub status: DocStatus,
    pub failure_reason: Option<String>,
    pub doc_type: Option<DocType>,
    pub type_confidence: Option<f32>,
    pub fields: Option<Fields>,
    /// Short summaries of the most telling fields.
    pub key_fields: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadReceipt {
    pub document: DocumentSummary,
    /// The same file was already in this person's archive: nothing new was stored.
    pub duplicate: bool,
}

/// Uploads files (multipart field `file`, repeatable; for the bot's albums also
/// `media_group_id`, which collects the photos of one Telegram album into one document).
/// Each file is checked against the size limit while it streams, stored, recorded and queued
/// for processing; the same file a second time is recognised and not processed again.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "documents/upload", input = MultipartFormData)]
pub async fn upload_documents(data: MultipartData) -> Result<Vec<UploadReceipt>, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, Via, authorize};
            let caller = authorize(Permission::DocumentsUpload).await?;
            let state = crate::state::app_state()?;
            let source = match caller.via {
                Via::Service { .. } => service::Source::Telegram,
                Via::Web | Via::MiniApp => service::Source::Web,
            };
            let form = service::read_multipart(
                data,
                state.settings.documents.max_upload_bytes(),
                state.settings.documents.max_upload_mb,
            )
            .await?;
            service::store_uploads(&state, caller.user_id, source, form).await
        }
        .await,
    )
}

/// The caller's documents, newest first (at most 200).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "documents/list", input = Json)]
pub async fn list_documents() -> Result<Vec<DocumentSummary>, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize};
            let caller = authorize(Permission::DocumentsRead).await?;
            let state = crate::state::app_state()?;
            service::list(&state.db, caller.user_id, 200).await
        }
        .await,
    )
}

/// Deletes one of the caller's documents: its rows, chunks and stored files.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "documents/delete", input = Json)]
pub async fn delete_document(id: Uuid) -> Result<(), ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize};
            let caller = authorize(Permission::DocumentsUpload).await?;
            let state = crate::state::app_state()?;
            service::delete(&state, caller.user_id, id).await
        }
        .await,
    )
}

/// One stored file of a document, as the bot needs it to send it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelegramFilePart {
    pub part: i32,
    pub file_name: String,
    /// Telegram's id of this file once the bot sent it: send by id, never upload twice.
    pub telegram_file_id: Option<String>,
}

/// The files of one of the caller's documents (the bot sends them when a source is tapped).
/// Another person's document is `not_found`.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "documents/telegram-file", input = Json)]
pub async fn telegram_file(id: Uuid) -> Result<Vec<TelegramFilePart>, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize};
            let caller = authorize(Permission::DocumentsRead).await?;
            let state = crate::state::app_state()?;
            service::telegram_parts(&state.db, caller.user_id, id).await
        }
        .await,
    )
}

/// What the bot receives on `{env}.telegram.documents.send`: send these files to this chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendToChatRequest {
    pub telegram_user_id: i64,
    pub document_id: Uuid,
    pub language_code: Option<String>,
}

/// Sends one of the signed-in person's documents to their Telegram chat (from the Mini App,
/// where a file download is awkward). The bot acknowledges at once and sends the file after;
/// `unavailable` when no bot answers.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "documents/send-to-chat", input = Json)]
pub async fn send_to_chat(id: Uuid) -> Result<(), ApiError> {
    crate::error::respond(
        async {
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            let state = crate::state::app_state()?;
            service::send_to_chat(&state, caller.user_id, id).await
        }
        .await,
    )
}

/// Records the Telegram `file_id` of a part the bot just sent.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "documents/telegram-file-id", input = Json)]
pub async fn record_telegram_file_id(id: Uuid, part: i32, file_id: String) -> Result<(), ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize};
            let caller = authorize(Permission::DocumentsRead).await?;
            let state = crate::state::app_state()?;
            service::record_telegram_file_id(&state.db, caller.user_id, id, part, &file_id).await
        }
        .await,
    )
}
