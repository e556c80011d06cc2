//! Service code behind the account server functions, and the export download route.

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use uuid::Uuid;

use super::{ExportLink, Language, Overview, TelegramBrief};
use crate::auth::one_time::{self, Purpose};
use crate::auth::{accounts, ratelimit};
use crate::error::ApiError;
use crate::state::{AppState, internal};

pub async fn overview(db: &sqlx::PgPool, user_id: Uuid) -> Result<Overview, ApiError> {
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.email, u.language, t.first_name, t.username, t.language_code,
                (SELECT count(*) FROM documents d WHERE d.user_id = u.id),
                (SELECT count(*) FROM documents d WHERE d.user_id = u.id AND d.status = 'processed'),
                (SELECT count(*) FROM documents d
                  WHERE d.user_id = u.id AND d.status IN ('queued', 'processing')),
                (SELECT count(*) FROM documents d
                  WHERE d.user_id = u.id AND d.status IN ('failed', 'unsupported')),
                (SELECT COALESCE(sum(d.size_bytes), 0)::bigint FROM documents d WHERE d.user_id = u.id),
                (SELECT count(*) FROM passkeys p WHERE p.user_id = u.id)
           FROM users u LEFT JOIN telegram_accounts t ON t.user_id = u.id
          WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
    .context("failed to read an account overview")
    .map_err(internal)?;
    let (
        email,
        language,
        first_name,
        username,
        telegram_language,
        documents,
        processed,
        pending,
        failed,
        storage_bytes,
        passkeys,
    ) = row.ok_or(ApiError::Unauthenticated)?;
    Ok(Overview {
        email,
        telegram: first_name.map(|first_name| TelegramBrief {
            first_name,
            username,
        }),
        documents,
        processed,
        pending,
        failed,
        storage_bytes,
        passkeys,
        language: language.as_deref().and_then(Language::parse),
        telegram_language,
    })
}

pub async fn set_language(
    db: &sqlx::PgPool,
    user_id: Uuid,
    language: Option<Language>,
) -> Result<Option<Language>, ApiError> {
    sqlx::query("UPDATE users SET language = $2 WHERE id = $1")
        .bind(user_id)
        .bind(language.map(Language::code))
        .execute(db)
        .await
        .context("failed to set a language")
        .map_err(internal)?;
    Ok(language)
}

pub async fn export_link(state: &AppState, user_id: Uuid) -> Result<ExportLink, ApiError> {
    let (_, token) = one_time::create(&state.db, user_id, Purpose::Export).await?;
    let base = state.settings.public_url.trim_end_matches('/');
    Ok(ExportLink {
        url: format!("{base}/account/export/{token}"),
        expires_in_secs: one_time::LIFETIME.as_secs(),
    })
}

/// Deletes the account and everything it owns. Rows go in one transaction (documents,
/// pages, chunks, passkeys, sessions, links and preferences cascade from `users`); then the
/// objects under the person's prefix, their Qdrant points, their cached answers and vectors.
/// A failure after the commit is logged: what remains is unreachable (no row names it).
pub async fn delete_account(
    state: &AppState,
    user_id: Uuid,
    confirm_email: &str,
) -> Result<(), ApiError> {
    let user = accounts::find_user(&state.db, user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let normalized = accounts::normalize_email(&user.email)?;
    let confirmed = accounts::normalize_email(confirm_email).is_ok_and(|typed| typed == normalized);
    if !confirmed {
        return Err(ApiError::field(
            "confirm_email",
            "type your account's email to confirm",
        ));
    }
    let keys: Vec<(String,)> = sqlx::query_as(
        "SELECT f.object_key FROM document_files f JOIN documents d ON d.id = f.document_id
          WHERE d.user_id = $1",
    )
    .bind(user_id)
    .fetch_all(&state.db)
    .await
    .context("failed to list an account's files")
    .map_err(internal)?;
    let mut tx = state
        .db
        .begin()
        .await
        .context("failed to begin deleting an account")
        .map_err(internal)?;
    sqlx::query("DELETE FROM telegram_accounts WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .context("failed to delete a Telegram link")
        .map_err(internal)?;
    sqlx::query("DELETE FROM rate_limits WHERE key = $1")
        .bind(format!("sign-in:account:{normalized}"))
        .execute(&mut *tx)
        .await
        .context("failed to delete an account's rate limits")
        .map_err(internal)?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .context("failed to delete an account")
        .map_err(internal)?;
    tx.commit()
        .await
        .context("failed to commit deleting an account")
        .map_err(internal)?;
    let removed = remove_objects(state, user_id, keys).await;
    if let Some(qdrant) = &state.qdrant
        && let Err(error) = qdrant.delete(user_id, None).await
    {
        tracing::warn!(error = ?error, "a deleted account's vectors stay in Qdrant");
    }
    state.vectors.forget(user_id);
    if let Err(error) = crate::rag::service::forget_answers(state, user_id).await {
        tracing::warn!(error = ?error, "a deleted account's cached answers stay until they expire");
    }
    metrics::counter!("dossier_accounts_deleted_total").increment(1);
    tracing::info!(%user_id, objects = removed, "account deleted");
    Ok(())
}

/// Removes the listed objects and anything else under the person's prefix.
async fn remove_objects(state: &AppState, user_id: Uuid, keys: Vec<(String,)>) -> usize {
    let mut removed = 0;
    for (key,) in keys {
        match state.objects.delete(&ObjectPath::from(key.as_str())).await {
            Ok(()) => removed += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => tracing::warn!(%error, "a deleted account's object could not be removed"),
        }
    }
    let prefix = ObjectPath::from(format!("{}-{user_id}", state.settings.env));
    let mut listing = state.objects.list(Some(&prefix));
    let mut leftovers = Vec::new();
    while let Some(item) = listing.next().await {
        match item {
            Ok(meta) => leftovers.push(meta.location),
            Err(error) => {
                tracing::warn!(%error, "a deleted account's objects could not be listed");
                break;
            }
        }
    }
    drop(listing);
    for location in leftovers {
        if state.objects.delete(&location).await.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// What `metadata.json` in an export holds.
#[derive(serde::Serialize)]
struct ExportMetadata {
    exported_at: String,
    account: serde_json::Value,
    telegram: Option<serde_json::Value>,
    notification_preferences: crate::notifications::NotificationPreferences,
    passkeys: Vec<crate::auth::passkeys::PasskeyInfo>,
    documents: Vec<ExportDocument>,
}

#[derive(serde::Serialize)]
struct ExportDocument {
    #[serde(flatten)]
    summary: crate::documents::DocumentSummary,
    /// Paths of the original files inside the zip.
    files: Vec<String>,
}

struct ExportFile {
    path: String,
    key: String,
}

type TelegramRow = (
    i64,
    Option<String>,
    String,
    Option<String>,
    Option<time::OffsetDateTime>,
);

async fn export_contents(
    state: &AppState,
    user_id: Uuid,
) -> Result<(ExportMetadata, Vec<ExportFile>), ApiError> {
    let db = &state.db;
    let account: (String, Option<String>, time::OffsetDateTime, bool) = sqlx::query_as(
        "SELECT email, language, created_at, password_hash IS NOT NULL FROM users WHERE id = $1",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
    .context("failed to read an account")
    .map_err(internal)?
    .ok_or(ApiError::NotFound)?;
    let telegram: Option<TelegramRow> = sqlx::query_as(
        "SELECT telegram_user_id, username, first_name, last_name, linked_at
               FROM telegram_accounts WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
    .context("failed to read a Telegram link")
    .map_err(internal)?;
    let rfc3339 = |at: time::OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let summaries = crate::documents::service::list(db, user_id, i64::MAX).await?;
    let rows: Vec<(Uuid, i32, String, String, String, i64)> = sqlx::query_as(
        "SELECT d.id, f.part, d.file_name, f.object_key, f.content_type,
                (SELECT count(*) FROM document_files g WHERE g.document_id = d.id)
           FROM documents d JOIN document_files f ON f.document_id = d.id
          WHERE d.user_id = $1 ORDER BY d.created_at, d.id, f.part",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
    .context("failed to list an account's files")
    .map_err(internal)?;
    let mut files = Vec::new();
    let mut by_document: std::collections::HashMap<Uuid, Vec<String>> = Default::default();
    for (document_id, part, name, key, content_type, parts) in rows {
        let safe = crate::documents::names::safe_file_name(&name);
        let path = if parts > 1 {
            let ext = crate::documents::service::extension_for(&content_type);
            format!("documents/{document_id}/{part}.{ext}")
        } else {
            format!("documents/{document_id}/{safe}")
        };
        by_document
            .entry(document_id)
            .or_default()
            .push(path.clone());
        files.push(ExportFile { path, key });
    }
    let documents = summaries
        .into_iter()
        .map(|summary| ExportDocument {
            files: by_document.remove(&summary.id).unwrap_or_default(),
            summary,
        })
        .collect();
    let metadata = ExportMetadata {
        exported_at: rfc3339(time::OffsetDateTime::now_utc()),
        account: serde_json::json!({
            "id": user_id,
            "email": account.0,
            "language": account.1,
            "created_at": rfc3339(account.2),
            "has_password": account.3,
        }),
        telegram: telegram.map(|(id, username, first_name, last_name, linked_at)| {
            serde_json::json!({
                "telegram_user_id": id,
                "username": username,
                "first_name": first_name,
                "last_name": last_name,
                "linked_at": linked_at.map(rfc3339),
            })
        }),
        notification_preferences: crate::notifications::service::preferences(db, user_id).await?,
        passkeys: crate::auth::passkeys::store::list(db, user_id).await?,
        documents,
    };
    Ok((metadata, files))
}

/// A `Write` that hands what the zip writer produces to the response body, in chunks.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "download cancelled"))
    }
}

/// Writes the zip on a blocking thread, reading one stored file at a time, so memory stays
/// bounded by the largest file whatever the archive's size.
fn write_zip(
    state: AppState,
    metadata: Vec<u8>,
    files: Vec<ExportFile>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Handle::current();
    let writer = ChannelWriter {
        tx: tx.clone(),
        buffer: Vec::with_capacity(CHUNK),
    };
    let mut zip = zip::ZipWriter::new_stream(writer);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    // Originals are mostly compressed already (PDF, JPEG): stored as they are.
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    zip.start_file("metadata.json", deflated)?;
    zip.write_all(&metadata)?;
    for file in files {
        let bytes = runtime.block_on(async {
            state
                .objects
                .get(&ObjectPath::from(file.key.as_str()))
                .await?
                .bytes()
                .await
        });
        match bytes {
            Ok(bytes) => {
                zip.start_file(file.path.as_str(), stored)?;
                zip.write_all(&bytes)?;
            }
            Err(error) => {
                // Said inside the archive rather than silently left out.
                tracing::warn!(%error, "a file could not be read for an export");
                zip.start_file(format!("{}.missing.txt", file.path), deflated)?;
                zip.write_all(
                    b"This file could not be read from storage when the export was made.\n",
                )?;
            }
        }
    }
    // The rest of the buffer goes out when the writer is dropped.
    drop(zip.finish()?);
    Ok(())
}

/// `GET /account/export/{token}`: the zip, once. A used, expired or unknown link is a 410 with
/// a sentence saying what to do.
pub async fn download_export(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let gone = || {
        (
            http::StatusCode::GONE,
            [(http::header::CACHE_CONTROL, "no-store")],
            "This export link has expired or was already used. Ask Dossier for a new one.\n",
        )
            .into_response()
    };
    let taken = match one_time::take(&state.db, &token, Purpose::Export).await {
        Ok(Some((_, user_id))) => user_id,
        Ok(None) => return gone(),
        Err(error) => return error.into_response(),
    };
    let user_id = taken;
    if let Err(error) = ratelimit::hit(&state.db, &format!("export:{user_id}"), EXPORTS).await {
        return error.into_response();
    }
    let (metadata, files) = match export_contents(&state, user_id).await {
        Ok(contents) => contents,
        Err(error) => return error.into_response(),
    };
    let metadata = match serde_json::to_vec_pretty(&metadata) {
        Ok(json) => json,
        Err(error) => return internal(anyhow::Error::new(error)).into_response(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(error) = write_zip(state, metadata, files, tx) {
            tracing::warn!(error = ?error, "an export was cut short");
            let _ = errors.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    metrics::counter!("dossier_exports_total").increment(1);
    let body = axum::body::Body::from_stream(tokio_stream(rx));
    let date = time::OffsetDateTime::now_utc().date();
    (
        [
            (http::header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"dossier-export-{date}.zip\""),
            ),
            (http::header::CACHE_CONTROL, "private, no-store".to_owned()),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// At most 10 exports per person per hour: each one reads every stored file.
const EXPORTS: ratelimit::Limit = ratelimit::Limit {
    max_hits: 10,
    window: std::time::Duration::from_secs(3600),
};

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
