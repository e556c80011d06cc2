//! Files people send: checked against the size limit before anything is downloaded, fetched
//! from Telegram, handed to the API's upload server function (the bot keeps nothing), and
//! acknowledged in the chat. Photos sent together (an album) become one document; the first
//! photo's status message is edited as the others arrive. `/docs` lists the latest documents.

use app::documents::{DocumentSummary, UploadReceipt};
use app::error::ApiError;
use app::telegram::ClaimedUpdate;
use serde_json::json;
use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{
    InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageId, ParseMode, User, WebAppInfo,
};

use crate::Ctx;
use crate::i18n::{DocLine, Lang, Text};
use crate::journal;

/// Albums whose status message is remembered (the oldest is forgotten beyond this).
const ALBUMS_REMEMBERED: usize = 256;

/// A file in a message: what Telegram tells about it before any download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub file_id: String,
    pub file_name: String,
    pub size: u64,
}

/// The document, or the largest size of a photo.
pub fn incoming(message: &Message) -> Option<Incoming> {
    if let Some(document) = message.document() {
        return Some(Incoming {
            file_id: document.file.id.0.clone(),
            file_name: document
                .file_name
                .clone()
                .unwrap_or_else(|| format!("document-{}", document.file.unique_id.0)),
            size: u64::from(document.file.size),
        });
    }
    let largest = message.photo()?.iter().max_by_key(|size| {
        (
            u64::from(size.width) * u64::from(size.height),
            size.file.size,
        )
    })?;
    Some(Incoming {
        file_id: largest.file.id.0.clone(),
        file_name: format!("photo-{}.jpg", largest.file.unique_id.0),
        size: u64::from(largest.file.size),
    })
}

/// Remembered status messages of albums in progress: media group id → (message, photos).
#[derive(Default)]
pub struct Albums {
    entries: std::sync::Mutex<std::collections::VecDeque<(String, MessageId, u32)>>,
}

impl Albums {
    /// Counts one more photo of `group`; the status message, if the album has one already.
    fn add(&self, group: &str) -> (Option<MessageId>, u32) {
        let Ok(mut entries) = self.entries.lock() else {
            return (None, 1);
        };
        match entries.iter_mut().find(|(g, _, _)| g == group) {
            Some((_, message, photos)) => {
                *photos += 1;
                (Some(*message), *photos)
            }
            None => (None, 1),
        }
    }

    fn remember(&self, group: &str, message: MessageId, photos: u32) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() == ALBUMS_REMEMBERED {
                entries.pop_front();
            }
            entries.push_back((group.to_owned(), message, photos));
        }
    }
}

async fn edit(ctx: &Ctx, chat: ChatId, message: MessageId, text: &Text, lang: Lang) {
    let request = ctx
        .bot
        .edit_message_text(chat, message, text.render(lang))
        .parse_mode(ParseMode::Html);
    if let Err(error) = ctx.pacer.send(chat.0, request).await {
        tracing::warn!(%error, "a status message could not be edited");
    }
}

/// Handles a document or photo from a linked person.
pub async fn on_file(
    ctx: &Ctx,
    message: &Message,
    user: &User,
    lang: Lang,
    file: Incoming,
    claim: &ClaimedUpdate,
) -> anyhow::Result<()> {
    let chat = message.chat.id;
    let telegram_user = i64::try_from(user.id.0).unwrap_or(0);
    if file.size > ctx.max_file_bytes {
        let text = Text::TooLarge {
            name: file.file_name,
            max_mb: ctx.max_file_bytes / (1024 * 1024),
        };
        crate::handlers::say(ctx, chat, &text, lang).await?;
        return Ok(());
    }
    let group = message.media_group_id().map(|group| group.0.clone());
    // One status message per file, or per album.
    let (status, photos) = match &group {
        Some(group) => ctx.albums.add(group),
        None => (None, 1),
    };
    // An earlier attempt at this update (cut short by a crash) may have sent the status
    // message already: edit that one. The API has it, or, if the API could not be reached
    // before that attempt died, this host's journal.
    let reply = journal::Entry::Reply {
        chat: chat.0,
        update_id: claim.update_id,
    };
    let journalled = match ctx
        .journal
        .as_ref()
        .filter(|_| claim.attempt > 1 && claim.reply_message_id.is_none())
        .map(|journal| journal.state(reply))
    {
        Some(journal::State::Sent(message)) => Some(message),
        Some(journal::State::Intended) => {
            // Its id died with the process: a new status message goes out, and the old one,
            // if it was sent, stays as it was.
            tracing::warn!(
                update_id = claim.update_id,
                "a status message may have been sent by a process killed mid-send"
            );
            None
        }
        Some(journal::State::Absent) | None => None,
    };
    let earlier = claim
        .reply_message_id
        .or(journalled)
        .filter(|_| group.is_none())
        .map(MessageId);
    if let (Some(message), None) = (earlier, claim.reply_message_id) {
        tracing::info!(
            update_id = claim.update_id,
            "status message taken from the journal"
        );
        note_reply(ctx, claim, reply, message).await;
    }
    let status = match status.or(earlier) {
        Some(status) => status,
        None => {
            if let (Some(journal), None) = (&ctx.journal, &group) {
                journal.intend(reply);
            }
            let sent = crate::handlers::say(
                ctx,
                chat,
                &Text::Uploading {
                    name: file.file_name.clone(),
                },
                lang,
            )
            .await?;
            if let Some(group) = &group {
                ctx.albums.remember(group, sent.id, photos);
            } else {
                if let Some(journal) = &ctx.journal {
                    journal.record(reply, sent.id.0);
                }
                note_reply(ctx, claim, reply, sent.id).await;
            }
            sent.id
        }
    };
    let source_key = format!("tg:{}", claim.update_id);
    let outcome = upload(ctx, telegram_user, &file, group.as_deref(), &source_key).await;
    let text = match outcome {
        Ok(receipt) if receipt.duplicate => Text::Duplicate {
            name: receipt.document.file_name,
            status: receipt.document.status,
        },
        Ok(_) if group.is_some() => Text::AlbumUploaded { photos },
        Ok(_) => Text::Uploaded {
            name: file.file_name.clone(),
        },
        Err(UploadError::TooLarge) => Text::TooLarge {
            name: file.file_name.clone(),
            max_mb: ctx.max_file_bytes / (1024 * 1024),
        },
        Err(UploadError::Api(ApiError::TooLarge { max_mb })) => Text::TooLarge {
            name: file.file_name.clone(),
            max_mb,
        },
        Err(UploadError::Api(ApiError::Validation { message, .. })) => {
            Text::UploadRefused { reason: message }
        }
        Err(UploadError::Api(ApiError::TelegramNotLinked)) => crate::handlers::link_first(ctx),
        Err(UploadError::Api(ApiError::Internal { incident })) => Text::SomethingWrong {
            incident: Some(incident),
        },
        Err(UploadError::Api(_)) => Text::TryLater,
        Err(UploadError::Telegram(error)) => {
            tracing::warn!(%error, "a file could not be fetched from Telegram");
            Text::TryLater
        }
    };
    edit(ctx, chat, status, &text, lang).await;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error("the file is larger than the bot may download")]
    TooLarge,
    #[error("Telegram: {0}")]
    Telegram(String),
    #[error("the API refused the upload: {0}")]
    Api(ApiError),
}

/// Remembers the status message with the update's claim, then forgets its journal entry
/// (best effort: without either, an attempt after a crash sends a new status message).
async fn note_reply(
    ctx: &Ctx,
    claim: &ClaimedUpdate,
    entry: journal::Entry<'_>,
    message: MessageId,
) {
    let noted: Result<(), ApiError> = ctx
        .api
        .call_retrying(
            "telegram/updates/reply",
            None,
            &json!({
                "bot_id": ctx.bot_id,
                "update_id": claim.update_id,
                "holder": ctx.holder,
                "message_id": message.0,
            }),
        )
        .await;
    match noted {
        Ok(()) => {
            if let Some(journal) = &ctx.journal {
                journal.forget(entry);
            }
        }
        Err(error) => tracing::warn!(%error, "a status message could not be recorded"),
    }
}

/// Fetches the file from Telegram and uploads it, repeating the upload while the API is
/// unavailable. `source_key` makes a repeat of an upload whose answer was lost get the
/// original receipt instead of "already in your archive".
async fn upload(
    ctx: &Ctx,
    telegram_user: i64,
    file: &Incoming,
    group: Option<&str>,
    source_key: &str,
) -> Result<UploadReceipt, UploadError> {
    let found = ctx
        .bot
        .get_file(teloxide::types::FileId(file.file_id.clone()))
        .await
        .map_err(|error| match error {
            teloxide::RequestError::Api(api) if api.to_string().contains("file is too big") => {
                UploadError::TooLarge
            }
            other => UploadError::Telegram(other.to_string()),
        })?;
    if u64::from(found.size) > ctx.max_file_bytes {
        return Err(UploadError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(found.size).unwrap_or(0));
    ctx.bot
        .download_file(&found.path, &mut bytes)
        .await
        .map_err(|error| UploadError::Telegram(error.to_string()))?;
    let mut fields: Vec<(&str, &str)> = vec![("source_key", source_key)];
    if let Some(group) = group {
        fields.push(("media_group_id", group));
    }
    let receipts: Vec<UploadReceipt> = ctx
        .api
        .call_multipart_retrying(
            "documents/upload",
            Some(telegram_user),
            &fields,
            &[("file", file.file_name.as_str(), bytes.as_slice())],
        )
        .await
        .map_err(UploadError::Api)?;
    receipts
        .into_iter()
        .next()
        .ok_or(UploadError::Api(ApiError::Unavailable))
}

/// `/docs`: the latest ten documents with their state, and the button to all of them.
pub async fn list(ctx: &Ctx, chat: ChatId, user: &User, lang: Lang) -> anyhow::Result<()> {
    let telegram_user = i64::try_from(user.id.0).unwrap_or(0);
    let listed: Result<Vec<DocumentSummary>, ApiError> = ctx
        .api
        .call("documents/list", Some(telegram_user), &json!({}))
        .await;
    let documents = match listed {
        Ok(documents) => documents,
        Err(error) => return crate::handlers::say_error(ctx, chat, lang, &error).await,
    };
    let text = if documents.is_empty() {
        Text::DocsEmpty
    } else {
        Text::DocsList {
            documents: documents
                .into_iter()
                .take(10)
                .map(|d| DocLine {
                    detail: if d.status.is_pending() {
                        None
                    } else {
                        d.failure_reason
                            .or_else(|| (!d.key_fields.is_empty()).then(|| d.key_fields.join(", ")))
                    },
                    name: d.file_name,
                    status: d.status,
                    doc_type: d.doc_type,
                })
                .collect(),
        }
    };
    let button = InlineKeyboardMarkup::new([[InlineKeyboardButton::web_app(
        Text::DocsButton.render(lang),
        WebAppInfo {
            url: ctx.mini_app_url("/miniapp/documents"),
        },
    )]]);
    let request = ctx
        .bot
        .send_message(chat, text.render(lang))
        .parse_mode(ParseMode::Html)
        .reply_markup(button);
    ctx.pacer.send(chat.0, request).await?;
    Ok(())
}
