//! Service code behind the document server functions: reading an upload, storing it once,
//! listing, downloading and deleting. Every query is filtered by the caller's user id.

use anyhow::Context;
use bytes::Bytes;
use object_store::PutPayload;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::classify::DocType;
use super::fields::Fields;
use super::names::{object_key, safe_file_name};
use super::pipeline::{self, Stage};
use super::text;
use super::{DocStatus, DocumentSummary, UploadReceipt};
use crate::error::ApiError;
use crate::state::{AppState, internal};

/// Most files one request may carry.
pub const MAX_FILES_PER_REQUEST: usize = 20;
/// Longest name kept for display.
const MAX_DISPLAY_NAME_CHARS: usize = 255;
/// How long an album waits for more photos after its latest one.
pub const ALBUM_QUIET: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Web,
    Telegram,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Telegram => "telegram",
        }
    }
}

/// One file of an upload, read completely (within the size limit).
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub file_name: String,
    pub bytes: Bytes,
}

/// An upload request, read.
#[derive(Debug, Clone, Default)]
pub struct UploadForm {
    pub files: Vec<UploadedFile>,
    /// A Telegram album: its photos become the pages of one document.
    pub media_group_id: Option<String>,
    /// The uploader's idempotency key (the bot's `tg:<update id>`): repeating an upload with
    /// the same key and file gets the first receipt, not "duplicate".
    pub source_key: Option<String>,
}

fn unreadable(error: impl std::fmt::Display) -> ApiError {
    tracing::info!(%error, "an upload could not be read");
    ApiError::validation("the upload could not be read (expected multipart form data)")
}

/// Reads the multipart body: every `file` field (all together at most `max_bytes`) and an
/// optional `media_group_id`. The limit is checked while the body streams, so an oversize file
/// is refused before it is held in memory.
pub async fn read_multipart(
    data: server_fn::codec::MultipartData,
    max_bytes: u64,
    max_mb: u64,
) -> Result<UploadForm, ApiError> {
    let mut multipart = data
        .into_inner()
        .ok_or_else(|| ApiError::validation("multipart data expected"))?;
    let mut form = UploadForm::default();
    let mut total: u64 = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("file") => {
                if form.files.len() == MAX_FILES_PER_REQUEST {
                    return Err(ApiError::validation(format!(
                        "at most {MAX_FILES_PER_REQUEST} files at once"
                    )));
                }
                let file_name = field.file_name().unwrap_or("file").to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    total += chunk.len() as u64;
                    if total > max_bytes {
                        return Err(ApiError::TooLarge { max_mb });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                form.files.push(UploadedFile {
                    file_name,
                    bytes: bytes.into(),
                });
            }
            Some("media_group_id") => {
                let value = field.text().await.map_err(unreadable)?;
                let value = value.trim();
                if value.is_empty()
                    || value.len() > 64
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(ApiError::field("media_group_id", "malformed media group"));
                }
                form.media_group_id = Some(value.to_owned());
            }
            Some("source_key") => {
                let value = field.text().await.map_err(unreadable)?;
                if value.is_empty()
                    || value.len() > 100
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_'))
                {
                    return Err(ApiError::field("source_key", "malformed source key"));
                }
                form.source_key = Some(value);
            }
            // Unknown fields are drained and ignored.
            _ => while field.chunk().await.map_err(unreadable)?.is_some() {},
        }
    }
    if form.files.is_empty() {
        return Err(ApiError::field("file", "choose a file to upload"));
    }
    Ok(form)
}

/// The name shown to people: the original, minus control and bidi-override characters,
/// bounded. (The stored object uses `safe_file_name`.)
pub fn display_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        })
        .take(MAX_DISPLAY_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned.to_owned()
    }
}

pub(crate) fn extension_for(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/tiff" => "tif",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/bmp" => "bmp",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

/// Stores every file of an upload: single files each as a document (or recognised as a
/// duplicate), an album's photos as the pages of one document.
pub async fn store_uploads(
    state: &AppState,
    user_id: Uuid,
    source: Source,
    form: UploadForm,
) -> Result<Vec<UploadReceipt>, ApiError> {
    let mut receipts = Vec::with_capacity(form.files.len());
    for file in form.files {
        if file.bytes.is_empty() {
            return Err(ApiError::field(
                "file",
                format!("{} is empty", display_name(&file.file_name)),
            ));
        }
        let receipt = match &form.media_group_id {
            Some(group) => store_album_part(state, user_id, source, group, file).await?,
            None => store_single(state, user_id, source, file, form.source_key.as_deref()).await?,
        };
        receipts.push(receipt);
    }
    Ok(receipts)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

async fn put_object(state: &AppState, key: &str, bytes: Bytes) -> Result<(), ApiError> {
    state
        .objects
        .put(&ObjectPath::from(key), PutPayload::from_bytes(bytes))
        .await
        .map_err(|error| {
            tracing::warn!(%error, "the object store refused a file");
            ApiError::Unavailable
        })?;
    Ok(())
}

async fn remove_object(state: &AppState, key: &str) {
    if let Err(error) = state.objects.delete(&ObjectPath::from(key)).await {
        tracing::warn!(%error, "an orphaned object could not be removed");
    }
}

/// Deletes stored uploads no `document_files` row names that are older than `grace`: the file
/// of an upload whose process died between storing it and writing its row. Returns how many.
pub async fn remove_orphans(state: &AppState, grace: std::time::Duration) -> anyhow::Result<usize> {
    use futures::TryStreamExt;

    let prefix = format!("{}-", state.subjects.env());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let cutoff = i64::try_from(now.saturating_sub(grace).as_secs()).unwrap_or(i64::MAX);
    let candidates: Vec<String> = state
        .objects
        .list(None)
        .try_filter_map(|meta| {
            let key = meta.location.to_string();
            let keep = key.starts_with(&prefix)
                && key.contains("/uploads/")
                && meta.last_modified.timestamp() < cutoff;
            std::future::ready(Ok(keep.then_some(key)))
        })
        .try_collect()
        .await
        .context("failed to list stored objects")?;
    let mut removed = 0;
    for batch in candidates.chunks(500) {
        let known: Vec<(String,)> =
            sqlx::query_as("SELECT object_key FROM document_files WHERE object_key = ANY($1)")
                .bind(batch)
                .fetch_all(&state.db)
                .await
                .context("failed to look up stored objects")?;
        let known: std::collections::HashSet<String> = known.into_iter().map(|(k,)| k).collect();
        for key in batch.iter().filter(|key| !known.contains(*key)) {
            state
                .objects
                .delete(&ObjectPath::from(key.as_str()))
                .await
                .with_context(|| format!("failed to delete the orphaned object {key}"))?;
            removed += 1;
        }
    }
    Ok(removed)
}

async fn existing_by_hash(
    db: &sqlx::PgPool,
    user_id: Uuid,
    hash: &[u8],
) -> Result<Option<DocumentSummary>, ApiError> {
    let row: Option<SummaryRow> = sqlx::query_as(&format!(
        "{SUMMARY_SELECT} WHERE d.user_id = $1 AND d.sha256 = $2"
    ))
    .bind(user_id)
    .bind(hash)
    .fetch_optional(db)
    .await
    .context("failed to look for a duplicate")
    .map_err(internal)?;
    row.map(SummaryRow::into_summary).transpose()
}

/// The receipt for a file the person has already: a duplicate, unless it is a repeat of the
/// upload that stored it (same `source_key`, its first answer lost).
async fn existing_receipt(
    db: &sqlx::PgPool,
    document: DocumentSummary,
    source_key: Option<&str>,
) -> Result<UploadReceipt, ApiError> {
    let repeat = match source_key {
        Some(key) => sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM documents WHERE id = $1 AND source_key = $2)",
        )
        .bind(document.id)
        .bind(key)
        .fetch_one(db)
        .await
        .context("failed to compare an upload's source")
        .map_err(internal)?,
        None => false,
    };
    Ok(UploadReceipt {
        document,
        duplicate: !repeat,
    })
}

async fn store_single(
    state: &AppState,
    user_id: Uuid,
    source: Source,
    file: UploadedFile,
    source_key: Option<&str>,
) -> Result<UploadReceipt, ApiError> {
    let hash = sha256(&file.bytes);
    if let Some(document) = existing_by_hash(&state.db, user_id, &hash).await? {
        return existing_receipt(&state.db, document, source_key).await;
    }
    let detected = text::detect(&file.bytes, &file.file_name);
    let id = Uuid::now_v7();
    let name = display_name(&file.file_name);
    let key = object_key(
        state.subjects.env(),
        user_id,
        id,
        &safe_file_name(&file.file_name),
    );
    let size = i64::try_from(file.bytes.len()).unwrap_or(i64::MAX);
    put_object(state, &key, file.bytes).await?;
    let inserted = insert_single(
        state,
        NewDocument {
            id,
            user_id,
            source,
            source_key,
            name: &name,
            mime: detected.mime,
            size,
            hash: &hash,
            key: &key,
        },
    )
    .await;
    match inserted {
        Ok(true) => {}
        Ok(false) => {
            // The same file arrived twice at once: the other upload won.
            remove_object(state, &key).await;
            let document =
                existing_by_hash(&state.db, user_id, &hash)
                    .await?
                    .ok_or(ApiError::Conflict {
                        message: "the same file is being uploaded".into(),
                    })?;
            return existing_receipt(&state.db, document, source_key).await;
        }
        Err(error) => {
            remove_object(state, &key).await;
            return Err(internal(error));
        }
    }
    queue(state, id, Stage::Text).await;
    Ok(UploadReceipt {
        document: summary(&state.db, user_id, id).await?,
        duplicate: false,
    })
}

/// A single file's rows, before they exist.
struct NewDocument<'a> {
    id: Uuid,
    user_id: Uuid,
    source: Source,
    source_key: Option<&'a str>,
    name: &'a str,
    mime: &'a str,
    size: i64,
    hash: &'a [u8],
    key: &'a str,
}

async fn insert_single(state: &AppState, new: NewDocument<'_>) -> anyhow::Result<bool> {
    let NewDocument {
        id,
        user_id,
        source,
        source_key,
        name,
        mime,
        size,
        hash,
        key,
    } = new;
    let mut tx = state.db.begin().await.context("failed to begin")?;
    let inserted = sqlx::query(
        "INSERT INTO documents (id, user_id, file_name, content_type, size_bytes, sha256, source,
                                source_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (user_id, sha256) WHERE sha256 IS NOT NULL DO NOTHING",
    )
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(mime)
    .bind(size)
    .bind(hash)
    .bind(source.as_str())
    .bind(source_key)
    .execute(&mut *tx)
    .await
    .context("failed to record a document")?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO document_files (document_id, part, object_key, content_type, size_bytes, sha256)
         VALUES ($1, 1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(key)
    .bind(mime)
    .bind(size)
    .bind(hash)
    .execute(&mut *tx)
    .await
    .context("failed to record a document's file")?;
    tx.commit().await.context("failed to commit a document")?;
    Ok(true)
}

/// A photo of a Telegram album: the album's open document gains a page (or is created). The
/// text stage waits until the album has been quiet for `ALBUM_QUIET`.
async fn store_album_part(
    state: &AppState,
    user_id: Uuid,
    source: Source,
    group: &str,
    file: UploadedFile,
) -> Result<UploadReceipt, ApiError> {
    let detected = text::detect(&file.bytes, &file.file_name);
    if !text::is_image(detected.kind) {
        return Err(ApiError::field("file", "an album may only hold images"));
    }
    let hash = sha256(&file.bytes);
    let size = i64::try_from(file.bytes.len()).unwrap_or(i64::MAX);
    // Two photos of one album may arrive at once; the loser of the race to create the album's
    // document retries and finds it.
    for _ in 0..3 {
        let mut tx = state
            .db
            .begin()
            .await
            .context("failed to begin")
            .map_err(internal)?;
        let open: Option<(Uuid, i32)> = sqlx::query_as(
            "SELECT d.id, coalesce((SELECT max(part) FROM document_files f WHERE f.document_id = d.id), 0)
             FROM documents d
             WHERE d.user_id = $1 AND d.media_group_id = $2 AND d.status = 'queued'
             FOR UPDATE",
        )
        .bind(user_id)
        .bind(group)
        .fetch_optional(&mut *tx)
        .await
        .context("failed to find an album")
        .map_err(internal)?;
        let (id, part) = match open {
            Some((id, last)) => (id, last + 1),
            None => {
                let id = Uuid::now_v7();
                let date = time::OffsetDateTime::now_utc().date();
                let created = sqlx::query(
                    "INSERT INTO documents (id, user_id, file_name, content_type, size_bytes, source, media_group_id)
                     VALUES ($1, $2, $3, $4, 0, $5, $6)
                     ON CONFLICT (user_id, media_group_id) WHERE media_group_id IS NOT NULL AND status = 'queued'
                     DO NOTHING",
                )
                .bind(id)
                .bind(user_id)
                .bind(format!("Photos {date}"))
                .bind(detected.mime)
                .bind(source.as_str())
                .bind(group)
                .execute(&mut *tx)
                .await
                .context("failed to create an album")
                .map_err(internal)?
                .rows_affected();
                if created == 0 {
                    continue;
                }
                (id, 1)
            }
        };
        let key = object_key(
            state.subjects.env(),
            user_id,
            id,
            &format!("photo-{part}.{}", extension_for(detected.mime)),
        );
        put_object(state, &key, file.bytes.clone()).await?;
        let recorded = async {
            sqlx::query(
                "INSERT INTO document_files (document_id, part, object_key, content_type, size_bytes, sha256)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(part)
            .bind(&key)
            .bind(detected.mime)
            .bind(size)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .context("failed to add a photo to an album")?;
            sqlx::query(
                "UPDATE documents SET size_bytes = size_bytes + $2, last_part_at = now(),
                   updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(size)
            .execute(&mut *tx)
            .await
            .context("failed to update an album")?;
            tx.commit().await.context("failed to commit an album photo")
        }
        .await;
        if let Err(error) = recorded {
            remove_object(state, &key).await;
            return Err(internal(error));
        }
        queue(state, id, Stage::Text).await;
        return Ok(UploadReceipt {
            document: summary(&state.db, user_id, id).await?,
            duplicate: false,
        });
    }
    Err(ApiError::Unavailable)
}

/// Queues a stage. A failure is logged, not returned: the document is safely recorded, and the
/// pipeline's sweep re-queues documents that make no progress.
async fn queue(state: &AppState, id: Uuid, stage: Stage) {
    if let Err(error) = pipeline::request(state, id, stage).await {
        tracing::warn!(error = ?error, document = %id, "a stage could not be queued; the sweep will retry");
    }
}

pub(crate) const SUMMARY_SELECT: &str = "SELECT d.id, d.file_name, d.content_type, d.size_bytes,
       (SELECT count(*) FROM document_files f WHERE f.document_id = d.id) AS files,
       d.page_count, d.status, d.failure_reason, d.doc_type, d.type_confidence, d.fields,
       d.created_at
  FROM documents d";

#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: Uuid,
    file_name: String,
    content_type: String,
    size_bytes: i64,
    files: i64,
    page_count: Option<i32>,
    status: String,
    failure_reason: Option<String>,
    doc_type: Option<String>,
    type_confidence: Option<f32>,
    fields: Option<sqlx::types::Json<Fields>>,
    created_at: time::OffsetDateTime,
}

impl SummaryRow {
    pub(crate) fn into_summary(self) -> Result<DocumentSummary, ApiError> {
        let doc_type = self.doc_type.as_deref().and_then(DocType::parse);
        let fields = self.fields.map(|json| json.0);
        let key_fields = match (&fields, doc_type) {
            (Some(fields), Some(doc_type)) => fields.key_fields(doc_type, 3),
            _ => Vec::new(),
        };
        Ok(DocumentSummary {
            id: self.id,
            file_name: self.file_name,
            content_type: self.content_type,
            size_bytes: self.size_bytes,
            files: u32::try_from(self.files).unwrap_or(0),
            pages: self.page_count.and_then(|p| u32::try_from(p).ok()),
            status: DocStatus::parse(&self.status)
                .ok_or_else(|| internal(anyhow::anyhow!("unknown status {}", self.status)))?,
            failure_reason: self.failure_reason,
            doc_type,
            type_confidence: self.type_confidence,
            fields,
            key_fields,
            created_at: self
                .created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        })
    }
}

/// One of the caller's documents.
pub async fn summary(
    db: &sqlx::PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<DocumentSummary, ApiError> {
    let row: Option<SummaryRow> = sqlx::query_as(&format!(
        "{SUMMARY_SELECT} WHERE d.user_id = $1 AND d.id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(db)
    .await
    .context("failed to read a document")
    .map_err(internal)?;
    row.ok_or(ApiError::NotFound)?.into_summary()
}

/// The caller's documents, newest first.
pub async fn list(
    db: &sqlx::PgPool,
    user_id: Uuid,
    limit: i64,
) -> Result<Vec<DocumentSummary>, ApiError> {
    let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
        "{SUMMARY_SELECT} WHERE d.user_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
    ))
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await
    .context("failed to list documents")
    .map_err(internal)?;
    rows.into_iter().map(SummaryRow::into_summary).collect()
}

/// A stored file of one of the caller's documents.
pub struct StoredFile {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Bytes,
}

/// Reads file `part` (1-based) of the caller's document; another person's is `NotFound`.
pub async fn read_file(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    part: i32,
) -> Result<StoredFile, ApiError> {
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT d.file_name, f.object_key, f.content_type,
                (SELECT count(*) FROM document_files g WHERE g.document_id = d.id)
           FROM documents d JOIN document_files f ON f.document_id = d.id
          WHERE d.user_id = $1 AND d.id = $2 AND f.part = $3",
    )
    .bind(user_id)
    .bind(id)
    .bind(part)
    .fetch_optional(&state.db)
    .await
    .context("failed to find a document's file")
    .map_err(internal)?;
    let (name, key, content_type, parts) = row.ok_or(ApiError::NotFound)?;
    let bytes = state
        .objects
        .get(&ObjectPath::from(key.as_str()))
        .await
        .map_err(|error| {
            tracing::warn!(%error, "a stored file could not be read");
            ApiError::Unavailable
        })?
        .bytes()
        .await
        .map_err(|error| {
            tracing::warn!(%error, "a stored file could not be read");
            ApiError::Unavailable
        })?;
    let file_name = if parts > 1 {
        format!("{name} ({part}).{}", extension_for(&content_type))
    } else {
        name
    };
    Ok(StoredFile {
        file_name,
        content_type,
        bytes,
    })
}

/// The files of one of the caller's documents, with their Telegram file ids.
pub async fn telegram_parts(
    db: &sqlx::PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Vec<crate::documents::TelegramFilePart>, ApiError> {
    let rows: Vec<(i32, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT f.part, d.file_name, f.content_type, f.telegram_file_id,
                (SELECT count(*) FROM document_files g WHERE g.document_id = d.id)
           FROM documents d JOIN document_files f ON f.document_id = d.id
          WHERE d.user_id = $1 AND d.id = $2 ORDER BY f.part",
    )
    .bind(user_id)
    .bind(id)
    .fetch_all(db)
    .await
    .context("failed to list a document's files")
    .map_err(internal)?;
    if rows.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(rows
        .into_iter()
        .map(
            |(part, name, content_type, file_id, parts)| crate::documents::TelegramFilePart {
                part,
                file_name: if parts > 1 {
                    format!("{name} ({part}).{}", extension_for(&content_type))
                } else {
                    name
                },
                telegram_file_id: file_id,
            },
        )
        .collect())
}

/// Remembers the Telegram file id of a part of the caller's document.
pub async fn record_telegram_file_id(
    db: &sqlx::PgPool,
    user_id: Uuid,
    id: Uuid,
    part: i32,
    file_id: &str,
) -> Result<(), ApiError> {
    if file_id.is_empty() || file_id.len() > 256 || !file_id.is_ascii() {
        return Err(ApiError::field("file_id", "Not a Telegram file id."));
    }
    let updated = sqlx::query(
        "UPDATE document_files f SET telegram_file_id = $4
           FROM documents d
          WHERE d.id = f.document_id AND d.user_id = $1 AND f.document_id = $2 AND f.part = $3",
    )
    .bind(user_id)
    .bind(id)
    .bind(part)
    .bind(file_id)
    .execute(db)
    .await
    .context("failed to record a Telegram file id")
    .map_err(internal)?
    .rows_affected();
    if updated == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

/// Deletes one of the caller's documents: rows first (chunks go with them), then objects.
pub async fn delete(state: &AppState, user_id: Uuid, id: Uuid) -> Result<(), ApiError> {
    let keys: Vec<(String,)> = sqlx::query_as(
        "WITH gone AS (DELETE FROM documents WHERE user_id = $1 AND id = $2 RETURNING id)
         SELECT f.object_key FROM document_files f JOIN gone ON gone.id = f.document_id",
    )
    .bind(user_id)
    .bind(id)
    .fetch_all(&state.db)
    .await
    .context("failed to delete a document")
    .map_err(internal)?;
    if keys.is_empty() {
        // Either not the caller's, or gone already; a document always has a file.
        let exists: Option<(Uuid,)> =
            sqlx::query_as("SELECT id FROM documents WHERE user_id = $1 AND id = $2")
                .bind(user_id)
                .bind(id)
                .fetch_optional(&state.db)
                .await
                .context("failed to check a document")
                .map_err(internal)?;
        if exists.is_none() {
            return Err(ApiError::NotFound);
        }
    }
    for (key,) in keys {
        remove_object(state, &key).await;
    }
    if let Some(qdrant) = &state.qdrant
        && let Err(error) = qdrant.delete(user_id, Some(id)).await
    {
        // Orphaned points are harmless: every hit is joined to its chunk row, which is gone.
        tracing::warn!(error = ?error, document = %id, "a deleted document's vectors stay in Qdrant");
    }
    Ok(())
}

/// `GET /documents/{id}/file[?part=N]`: the original file, for its owner (cookie session).
/// Served as an attachment with `nosniff` and a sandboxing CSP, so an uploaded HTML file can
/// never run in Dossier's origin.
pub async fn download(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(id): axum::extract::Path<Uuid>,
    axum::extract::Query(query): axum::extract::Query<DownloadQuery>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, _) = request.into_parts();
    let caller = match crate::auth::principal::authorize_parts(
        &state,
        &parts,
        crate::auth::principal::Permission::DocumentsRead,
    )
    .await
    {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let file = match read_file(&state, caller.user_id, id, query.part.unwrap_or(1)).await {
        Ok(file) => file,
        Err(error) => return error.into_response(),
    };
    (
        [
            (http::header::CONTENT_TYPE, file.content_type),
            (
                http::header::CONTENT_DISPOSITION,
                content_disposition(&file.file_name),
            ),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                http::header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_owned(),
            ),
            (http::header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        file.bytes,
    )
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct DownloadQuery {
    pub part: Option<i32>,
}

/// `attachment` with an ASCII fallback name and the UTF-8 name (RFC 6266 / 5987).
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Middleware: an upload must be `multipart/form-data` with a boundary. (The server-function
/// machinery would otherwise panic on a request without one.)
pub async fn require_multipart(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if request.uri().path() == "/api/documents/upload" {
        let has_boundary = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
                    && value.split(';').any(|part| {
                        part.trim().to_ascii_lowercase().starts_with("boundary=")
                            && part.trim().len() > "boundary=".len()
                    })
            });
        if !has_boundary {
            return ApiError::validation("the upload must be multipart/form-data").into_response();
        }
    }
    next.run(request).await
}

/// Asks the bot (request/reply on `{env}.telegram.documents.send`) to send one of the
/// caller's documents to their linked chat.
pub async fn send_to_chat(state: &AppState, user_id: Uuid, id: Uuid) -> Result<(), ApiError> {
    summary(&state.db, user_id, id).await?;
    let linked: Option<(i64, Option<String>)> = sqlx::query_as(
        "SELECT t.telegram_user_id, COALESCE(u.language, t.language_code)
           FROM telegram_accounts t JOIN users u ON u.id = t.user_id
          WHERE t.user_id = $1 AND t.chat_id IS NOT NULL",
    )
    .bind(user_id)
    .fetch_optional(&state.db)
    .await
    .context("failed to find a linked chat")
    .map_err(internal)?;
    let (telegram_user_id, language_code) = linked.ok_or(ApiError::TelegramNotLinked)?;
    let request = super::SendToChatRequest {
        telegram_user_id,
        document_id: id,
        language_code,
    };
    let payload = serde_json::to_vec(&request)
        .context("failed to encode a send request")
        .map_err(internal)?;
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        state
            .nats
            .request(state.subjects.send_document(), payload.into()),
    )
    .await;
    match reply {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "no bot took a send-to-chat request");
            Err(ApiError::Unavailable)
        }
        Err(_) => {
            tracing::warn!("a send-to-chat request timed out");
            Err(ApiError::Unavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_lose_control_and_bidi_characters() {
        assert_eq!(display_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(display_name("a\nb\u{0}.pdf"), "ab.pdf");
        assert_eq!(display_name("  "), "file");
        assert_eq!(display_name(&"я".repeat(400)).chars().count(), 255);
    }

    #[test]
    fn downloads_name_files_safely() {
        let header = content_disposition("Счёт \"1\".pdf");
        assert!(
            header.starts_with("attachment; filename=\"____ _1_.pdf\""),
            "{header}"
        );
        assert!(header.contains("filename*=UTF-8''%D0%A1"), "{header}");
        assert!(!header.contains('\n'));
    }
}
