//! The document pipeline's stages: text → classify → extract → embed, then the notification
//! decision. The server's JetStream workers call `run` for each message, then `announce` what
//! to queue next, and acknowledge only after that.
//!
//! Every stage is idempotent: it starts by reading the document's `stage` column and, when the
//! document is already past it (a redelivered or duplicated message), it only re-announces
//! the document's current stage. A stage's results and the advance of `stage` are written in
//! one transaction that re-checks `stage` under a row lock, so two workers racing on the same
//! message leave one set of pages, one set of chunks and one notification.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::chunk::{ChunkOptions, chunk_pages};
use super::classify::{self, DocType};
use super::embed::{Embedder, MiniLm, dot, to_bytes};
use super::fields::{self, Fields};
use super::service::ALBUM_QUIET;
use super::text::{self, TextError};
use crate::events;
use crate::notifications::{NotificationEvent, TelegramNotification};
use crate::state::AppState;

/// The stages that have a queue of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Text,
    Classify,
    Extract,
    Embed,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Text, Stage::Classify, Stage::Extract, Stage::Embed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Classify => "classify",
            Self::Extract => "extract",
            Self::Embed => "embed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == value)
    }
}

/// The payload of every pipeline message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEvent {
    pub document_id: Uuid,
}

/// What a stage run decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Queue this stage next.
    Advanced(Stage),
    /// Every stage is done: announce completion.
    Completed,
    /// The document ended failed or unsupported: announce the failure.
    Ended,
    /// The document no longer exists (deleted meanwhile).
    Gone,
    /// Not yet: an album is still receiving photos. Try again after this long.
    Wait(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// This document will never get through; the reason is shown to its owner.
    #[error("{reason}")]
    Permanent { unsupported: bool, reason: String },
    /// Something on our side; worth retrying.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

fn permanent(reason: impl Into<String>) -> StageError {
    StageError::Permanent {
        unsupported: false,
        reason: reason.into(),
    }
}

/// The embedding model, loaded on first use (tests that never embed never load it), and the
/// classification prototypes' vectors, computed once.
pub struct Models {
    model_dir: PathBuf,
    local: OnceCell<Arc<MiniLm>>,
    /// A networked embedder (Ollama) that replaces the local model when configured.
    remote: Option<Arc<dyn Embedder>>,
    prototypes: OnceCell<Vec<Vec<f32>>>,
}

impl Models {
    pub fn new(model_dir: PathBuf, remote: Option<Arc<dyn Embedder>>) -> Self {
        Self {
            model_dir,
            local: OnceCell::new(),
            remote,
            prototypes: OnceCell::new(),
        }
    }

    pub async fn embedder(&self) -> anyhow::Result<Arc<dyn Embedder>> {
        if let Some(remote) = &self.remote {
            return Ok(remote.clone());
        }
        let dir = self.model_dir.clone();
        let model = self
            .local
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || MiniLm::load(&dir))
                    .await
                    .context("the model loader panicked")?
                    .map(Arc::new)
            })
            .await?;
        Ok(model.clone())
    }

    /// Cosine similarity of `text` to each type's prototype, in `DocType::ALL` order.
    pub async fn type_similarities(&self, text: &str) -> anyhow::Result<[f32; 8]> {
        let embedder = self.embedder().await?;
        let prototypes = self
            .prototypes
            .get_or_try_init(|| async {
                let texts: Vec<String> = classify::PROTOTYPES
                    .iter()
                    .map(|(_, text)| (*text).to_owned())
                    .collect();
                embedder.embed(&texts).await
            })
            .await?;
        let vector = embedder
            .embed(&[text.to_owned()])
            .await?
            .into_iter()
            .next()
            .context("the model returned no vector")?;
        let mut similarities = [0.0; 8];
        for (index, kind) in DocType::ALL.iter().enumerate() {
            let position = classify::PROTOTYPES
                .iter()
                .position(|(prototype, _)| prototype == kind)
                .context("a type without a prototype")?;
            similarities[index] = dot(&vector, &prototypes[position]);
        }
        Ok(similarities)
    }
}

/// Queues `stage` for a document. The message id makes a repeat within the stream's window
/// a no-op.
pub async fn request(state: &AppState, id: Uuid, stage: Stage) -> anyhow::Result<()> {
    ensure_streams(state).await?;
    events::publish(
        &state.jetstream,
        state.subjects.document_stage(stage.as_str()),
        &format!("{id}:{}", stage.as_str()),
        serde_json::to_vec(&DocumentEvent { document_id: id })?,
    )
    .await
}

/// Creates the streams once per process (idempotent across replicas).
pub async fn ensure_streams(state: &AppState) -> anyhow::Result<()> {
    state
        .streams
        .get_or_try_init(|| {
            events::ensure_streams(
                &state.jetstream,
                &state.subjects,
                state.settings.nats_replicas,
            )
        })
        .await?;
    Ok(())
}

/// Publishes what follows an outcome: the next stage, completion or failure.
pub async fn announce(state: &AppState, id: Uuid, outcome: Outcome) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(&DocumentEvent { document_id: id })?;
    match outcome {
        Outcome::Advanced(stage) => request(state, id, stage).await,
        Outcome::Completed => {
            ensure_streams(state).await?;
            events::publish(
                &state.jetstream,
                state.subjects.document_completed(),
                &format!("{id}:completed"),
                payload,
            )
            .await
        }
        Outcome::Ended => {
            ensure_streams(state).await?;
            events::publish(
                &state.jetstream,
                state.subjects.document_failed(),
                &format!("{id}:failed"),
                payload,
            )
            .await
        }
        Outcome::Gone | Outcome::Wait(_) => Ok(()),
    }
}

/// Where a document already is, as an outcome to re-announce.
fn resume(stage: &str, status: &str) -> Outcome {
    match Stage::parse(stage) {
        Some(stage) => Outcome::Advanced(stage),
        None if status == "processed" => Outcome::Completed,
        None => Outcome::Ended,
    }
}

async fn position(state: &AppState, id: Uuid) -> anyhow::Result<Option<(String, String)>> {
    sqlx::query_as("SELECT stage, status FROM documents WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db)
        .await
        .context("failed to read a document's stage")
}

/// Runs `stage` for a document.
pub async fn run(state: &AppState, stage: Stage, id: Uuid) -> Result<Outcome, StageError> {
    let Some((current, status)) = position(state, id).await? else {
        return Ok(Outcome::Gone);
    };
    if current != stage.as_str() {
        return Ok(resume(&current, &status));
    }
    let started = std::time::Instant::now();
    let outcome = match stage {
        Stage::Text => text_stage(state, id).await,
        Stage::Classify => classify_stage(state, id).await,
        Stage::Extract => extract_stage(state, id).await,
        Stage::Embed => embed_stage(state, id).await,
    };
    let result = match &outcome {
        Ok(_) => "ok",
        Err(StageError::Permanent { .. }) => "failed",
        Err(StageError::Transient(_)) => "retry",
    };
    metrics::histogram!("dossier_pipeline_stage_seconds", "stage" => stage.as_str(), "result" => result)
        .record(started.elapsed().as_secs_f64());
    outcome
}

/// Advances `stage` to `next` unless another worker already did; answers where the document
/// is when it did not advance it.
async fn advance(
    state: &AppState,
    id: Uuid,
    from: Stage,
    next: &str,
    set: &str,
    bind: impl FnOnce(
        sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<Outcome, StageError> {
    let sql = format!(
        "UPDATE documents SET {set}, stage = '{next}', updated_at = now() WHERE id = $1 AND stage = '{}'",
        from.as_str()
    );
    let updated = bind(sqlx::query(&sql).bind(id))
        .execute(&state.db)
        .await
        .context("failed to record a stage's result")?
        .rows_affected();
    if updated == 1 {
        return Ok(Stage::parse(next).map_or(Outcome::Completed, Outcome::Advanced));
    }
    Ok(match position(state, id).await? {
        Some((stage, status)) => resume(&stage, &status),
        None => Outcome::Gone,
    })
}

/// Reads a document's files and extracts its pages.
async fn text_stage(state: &AppState, id: Uuid) -> Result<Outcome, StageError> {
    let quiet_ms = i64::try_from(ALBUM_QUIET.as_millis()).unwrap_or(3000);
    // An album waits until no photo arrived for a while; starting closes it (later photos of
    // the same group start a new document).
    let started = sqlx::query(
        "UPDATE documents SET status = 'processing', updated_at = now()
          WHERE id = $1 AND stage = 'text' AND status IN ('queued', 'processing')
            AND (media_group_id IS NULL OR last_part_at <= now() - make_interval(secs => $2::float8 / 1000))",
    )
    .bind(id)
    .bind(quiet_ms as f64)
    .execute(&state.db)
    .await
    .context("failed to start reading a document")?
    .rows_affected();
    if started == 0 {
        let row: Option<(String, String, f64)> = sqlx::query_as(
            "SELECT stage, status,
                    extract(epoch FROM last_part_at + make_interval(secs => $2::float8 / 1000) - now())::float8
               FROM documents WHERE id = $1",
        )
        .bind(id)
        .bind(quiet_ms as f64)
        .fetch_optional(&state.db)
        .await
        .context("failed to read an album")?;
        return Ok(match row {
            None => Outcome::Gone,
            Some((stage, status, _)) if stage != "text" => resume(&stage, &status),
            Some((_, _, remaining)) => {
                Outcome::Wait(Duration::from_secs_f64(remaining.clamp(0.1, 10.0)))
            }
        });
    }
    let (file_name, album): (String, bool) =
        sqlx::query_as("SELECT file_name, media_group_id IS NOT NULL FROM documents WHERE id = $1")
            .bind(id)
            .fetch_one(&state.db)
            .await
            .context("failed to read a document")?;
    let files: Vec<(String,)> = sqlx::query_as(
        "SELECT object_key FROM document_files WHERE document_id = $1 ORDER BY part",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await
    .context("failed to list a document's files")?;
    let mut contents: Vec<Bytes> = Vec::with_capacity(files.len());
    for (key,) in &files {
        let bytes = state
            .objects
            .get(&ObjectPath::from(key.as_str()))
            .await
            .with_context(|| format!("failed to read {key} from the object store"))?
            .bytes()
            .await
            .with_context(|| format!("failed to read {key} from the object store"))?;
        contents.push(bytes);
    }
    let limits = text::Limits {
        ocr_languages: state.settings.documents.ocr_languages.clone(),
        ..text::Limits::default()
    };
    let extracted = if album {
        text::extract_album(&contents, &limits).await
    } else {
        let bytes = contents.first().context("a document without a file")?;
        text::extract(bytes, text::detect(bytes, &file_name), &limits).await
    };
    let pages = match extracted {
        Ok(pages) => pages,
        Err(TextError::Unsupported(reason)) => {
            return Err(StageError::Permanent {
                unsupported: true,
                reason,
            });
        }
        Err(TextError::Unreadable(reason)) => return Err(permanent(reason)),
        Err(TextError::Transient(error)) => return Err(StageError::Transient(error)),
    };
    if pages.iter().all(|page| page.text.trim().is_empty()) {
        return Err(permanent("no readable text was found in it"));
    }
    let mut tx = match begin_at(state, id, Stage::Text).await? {
        Ok(tx) => tx,
        Err(outcome) => return Ok(outcome),
    };
    sqlx::query("DELETE FROM document_pages WHERE document_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("failed to clear pages")?;
    let numbers: Vec<i32> = pages
        .iter()
        .map(|p| i32::try_from(p.number).unwrap_or(i32::MAX))
        .collect();
    let texts: Vec<&str> = pages.iter().map(|p| p.text.as_str()).collect();
    let ocr: Vec<bool> = pages.iter().map(|p| p.ocr).collect();
    sqlx::query(
        "INSERT INTO document_pages (document_id, page, text, ocr)
         SELECT $1, * FROM unnest($2::int[], $3::text[], $4::bool[])",
    )
    .bind(id)
    .bind(&numbers)
    .bind(&texts)
    .bind(&ocr)
    .execute(&mut *tx)
    .await
    .context("failed to store pages")?;
    sqlx::query(
        "UPDATE documents SET page_count = $2, stage = 'classify', updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(i32::try_from(pages.len()).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await
    .context("failed to advance a document")?;
    tx.commit().await.context("failed to commit pages")?;
    Ok(Outcome::Advanced(Stage::Classify))
}

/// Opens the transaction that writes a stage's results: the document is locked and must still
/// be at `stage` (another worker may have finished it meanwhile; then where it is instead).
async fn begin_at(
    state: &AppState,
    id: Uuid,
    stage: Stage,
) -> anyhow::Result<Result<sqlx::Transaction<'static, sqlx::Postgres>, Outcome>> {
    let mut tx = state.db.begin().await.context("failed to begin")?;
    let (current, status): (String, String) =
        sqlx::query_as("SELECT stage, status FROM documents WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .context("failed to lock a document")?;
    if current != stage.as_str() {
        return Ok(Err(resume(&current, &status)));
    }
    Ok(Ok(tx))
}

/// The document's text, pages in order, at most `max_chars` characters.
async fn document_text(state: &AppState, id: Uuid, max_chars: i32) -> anyhow::Result<String> {
    let (text,): (Option<String>,) = sqlx::query_as(
        "SELECT left(string_agg(text, E'\\n\\n' ORDER BY page), $2) FROM document_pages WHERE document_id = $1",
    )
    .bind(id)
    .bind(max_chars)
    .fetch_one(&state.db)
    .await
    .context("failed to read a document's text")?;
    Ok(text.unwrap_or_default())
}

/// Rules plus the embedding model's similarity to each type.
async fn classify_locally(state: &AppState, text: &str) -> anyhow::Result<(DocType, f32)> {
    let rules = classify::rule_scores(text);
    let excerpt: String = text.chars().take(1500).collect();
    let similarities = state.models.type_similarities(&excerpt).await?;
    Ok(classify::decide(&rules, Some(&similarities)))
}

async fn classify_stage(state: &AppState, id: Uuid) -> Result<Outcome, StageError> {
    let text = document_text(state, id, 20_000).await?;
    let (doc_type, confidence) = match &state.ollama {
        Some(ollama) => match super::llm::classify(ollama, &text).await {
            Ok(found) => found,
            Err(error) => {
                // The document still gets a type: the local one, rather than waiting for
                // an LLM that may be down for hours.
                tracing::warn!(error = ?error, document = %id, "Ollama could not classify; using the local rules");
                match classify_locally(state, &text).await {
                    Ok(found) => found,
                    Err(_) => classify::decide(&classify::rule_scores(&text), None),
                }
            }
        },
        None => classify_locally(state, &text).await?,
    };
    advance(
        state,
        id,
        Stage::Classify,
        "extract",
        "doc_type = $2, type_confidence = $3",
        |query| query.bind(doc_type.as_str()).bind(confidence),
    )
    .await
}

async fn extract_stage(state: &AppState, id: Uuid) -> Result<Outcome, StageError> {
    let text = document_text(state, id, 200_000).await?;
    let mut found: Fields = fields::extract(&text);
    if let Some(ollama) = &state.ollama {
        match super::llm::extract(ollama, &text).await {
            Ok(more) => found = super::llm::merge(found, more),
            Err(error) => {
                tracing::warn!(error = ?error, document = %id, "Ollama could not extract fields; keeping the rules' fields");
            }
        }
    }
    advance(state, id, Stage::Extract, "embed", "fields = $2", |query| {
        query.bind(sqlx::types::Json(found))
    })
    .await
}

async fn embed_stage(state: &AppState, id: Uuid) -> Result<Outcome, StageError> {
    let (user_id,): (Uuid,) = sqlx::query_as("SELECT user_id FROM documents WHERE id = $1")
        .bind(id)
        .fetch_one(&state.db)
        .await
        .context("failed to read a document's owner")?;
    let pages: Vec<(i32, String)> = sqlx::query_as(
        "SELECT page, text FROM document_pages WHERE document_id = $1 ORDER BY page",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await
    .context("failed to read pages")?;
    let borrowed: Vec<(u32, &str)> = pages
        .iter()
        .map(|(page, text)| (u32::try_from(*page).unwrap_or(0), text.as_str()))
        .collect();
    let chunks = chunk_pages(&borrowed, &ChunkOptions::default());
    let embedder = state.models.embedder().await?;
    let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(32) {
        vectors.extend(embedder.embed(batch).await?);
    }
    if vectors.len() != chunks.len() {
        return Err(anyhow::anyhow!(
            "the model returned {} vectors for {} chunks",
            vectors.len(),
            chunks.len()
        )
        .into());
    }
    let ordinals: Vec<i32> = chunks
        .iter()
        .map(|c| i32::try_from(c.ordinal).unwrap_or(i32::MAX))
        .collect();
    let page_numbers: Vec<i32> = chunks
        .iter()
        .map(|c| i32::try_from(c.page).unwrap_or(i32::MAX))
        .collect();
    let mut tx = match begin_at(state, id, Stage::Embed).await? {
        Ok(tx) => tx,
        Err(outcome) => return Ok(outcome),
    };
    // Qdrant first, under the document's lock: its point ids are derived from (document,
    // chunk), so a retry after a failed commit overwrites the same points.
    if let Some(qdrant) = &state.qdrant {
        let points: Vec<crate::adapters::qdrant::ChunkVector<'_>> = vectors
            .iter()
            .enumerate()
            .map(|(i, vector)| crate::adapters::qdrant::ChunkVector {
                ordinal: ordinals[i],
                page: page_numbers[i],
                vector,
            })
            .collect();
        qdrant.upsert(user_id, id, &points).await?;
    }
    sqlx::query("DELETE FROM chunks WHERE document_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("failed to clear chunks")?;
    let embeddings: Vec<Vec<u8>> = vectors.iter().map(|v| to_bytes(v)).collect();
    sqlx::query(
        "INSERT INTO chunks (document_id, user_id, model, ordinal, page, text, embedding)
         SELECT $1, $2, $3, * FROM unnest($4::int[], $5::int[], $6::text[], $7::bytea[])",
    )
    .bind(id)
    .bind(user_id)
    .bind(embedder.model_id())
    .bind(&ordinals)
    .bind(&page_numbers)
    .bind(&texts)
    .bind(&embeddings)
    .execute(&mut *tx)
    .await
    .context("failed to store chunks")?;
    sqlx::query(
        "UPDATE documents SET status = 'processed', stage = 'done', updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .context("failed to complete a document")?;
    tx.commit().await.context("failed to commit chunks")?;
    Ok(Outcome::Completed)
}

/// Ends a document as failed (or unsupported) with a reason its owner will see. A document
/// already finished is left as it is.
pub async fn fail(
    state: &AppState,
    id: Uuid,
    unsupported: bool,
    reason: &str,
) -> anyhow::Result<Outcome> {
    let reason: String = reason.chars().take(500).collect();
    let updated = sqlx::query(
        "UPDATE documents SET status = $2, failure_reason = $3, stage = 'done', updated_at = now()
          WHERE id = $1 AND stage <> 'done'",
    )
    .bind(id)
    .bind(if unsupported { "unsupported" } else { "failed" })
    .bind(&reason)
    .execute(&state.db)
    .await
    .context("failed to record a failure")?
    .rows_affected();
    metrics::counter!("dossier_pipeline_documents_failed_total", "unsupported" => if unsupported { "true" } else { "false" })
        .increment(updated);
    Ok(match position(state, id).await? {
        Some((stage, status)) => resume(&stage, &status),
        None => Outcome::Gone,
    })
}

/// The completion handler: tells the owner in Telegram, if linked and if their preferences
/// allow, exactly once per document. The notification is published (de-duplicated by id over
/// the notification stream's hour) before the document is marked notified, so a crash in
/// between repeats the publish, never skips it.
pub async fn notify(state: &AppState, id: Uuid) -> anyhow::Result<()> {
    #[derive(sqlx::FromRow)]
    struct Row {
        file_name: String,
        status: String,
        doc_type: Option<String>,
        fields: Option<sqlx::types::Json<Fields>>,
        failure_reason: Option<String>,
        page_count: Option<i32>,
        notified: bool,
        chat_id: Option<i64>,
        language_code: Option<String>,
        want_processed: Option<bool>,
        want_failed: Option<bool>,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT d.file_name, d.status, d.doc_type, d.fields, d.failure_reason, d.page_count,
                d.notified_at IS NOT NULL AS notified, t.chat_id,
                COALESCE(u.language, t.language_code) AS language_code,
                p.processed AS want_processed, p.failed AS want_failed
           FROM documents d
           JOIN users u ON u.id = d.user_id
           LEFT JOIN telegram_accounts t ON t.user_id = d.user_id
           LEFT JOIN notification_preferences p ON p.user_id = d.user_id
          WHERE d.id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await
    .context("failed to read a finished document")?;
    let Some(row) = row else { return Ok(()) };
    if row.notified {
        return Ok(());
    }
    let event = match row.status.as_str() {
        "processed" if row.want_processed.unwrap_or(true) => {
            let doc_type = row
                .doc_type
                .as_deref()
                .and_then(DocType::parse)
                .unwrap_or(DocType::Other);
            Some(NotificationEvent::DocumentProcessed {
                document_id: id,
                key_fields: row
                    .fields
                    .map(|f| f.0.key_fields(doc_type, 3))
                    .unwrap_or_default(),
                file_name: row.file_name,
                doc_type,
                pages: row
                    .page_count
                    .and_then(|p| u32::try_from(p).ok())
                    .unwrap_or(0),
            })
        }
        "failed" | "unsupported" if row.want_failed.unwrap_or(true) => {
            Some(NotificationEvent::DocumentFailed {
                document_id: id,
                file_name: row.file_name,
                reason: row.failure_reason.unwrap_or_default(),
            })
        }
        "processed" | "failed" | "unsupported" => None,
        // Not finished: nothing to say yet.
        _ => return Ok(()),
    };
    if let (Some(event), Some(chat_id)) = (event, row.chat_id) {
        let notification = TelegramNotification {
            id: format!("doc:{id}"),
            chat_id,
            language_code: row.language_code,
            event,
        };
        ensure_streams(state).await?;
        events::publish(
            &state.jetstream,
            state.subjects.telegram_notifications(),
            &notification.id,
            serde_json::to_vec(&notification)?,
        )
        .await?;
        metrics::counter!("dossier_notifications_published_total").increment(1);
    }
    sqlx::query("UPDATE documents SET notified_at = now() WHERE id = $1 AND notified_at IS NULL")
        .bind(id)
        .execute(&state.db)
        .await
        .context("failed to mark a document notified")?;
    Ok(())
}

/// Re-announces documents that made no progress for `older_than` (a lost message, a publish
/// that failed after an upload, a worker that died on its last delivery). Returns how many.
pub async fn requeue_stalled(state: &AppState, older_than: Duration) -> anyhow::Result<usize> {
    let stalled: Vec<(Uuid, String, String)> = sqlx::query_as(
        "UPDATE documents SET updated_at = now()
          WHERE id IN (SELECT id FROM documents
                        WHERE (stage <> 'done' OR notified_at IS NULL)
                          AND updated_at < now() - make_interval(secs => $1)
                        ORDER BY updated_at LIMIT 100
                        FOR UPDATE SKIP LOCKED)
          RETURNING id, stage, status",
    )
    .bind(older_than.as_secs_f64())
    .fetch_all(&state.db)
    .await
    .context("failed to find stalled documents")?;
    for (id, stage, status) in &stalled {
        let outcome = resume(stage, status);
        if let Err(error) = announce(state, *id, outcome).await {
            tracing::warn!(error = ?error, document = %id, "a stalled document could not be re-queued");
        }
    }
    Ok(stalled.len())
}
