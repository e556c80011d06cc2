//! Questions: a plain-text message (or `/ask …`) from a linked person goes to `rag/ask`.
//! The bot shows "typing…"; a generated answer grows in one message by edits (throttled by the
//! pacer to Telegram's rate) as its pieces arrive over NATS; the final message lists the
//! sources, each a button `doc:<document id>` that sends back the original file.
//!
//! A tapped source is fetched for the acting user (the API re-checks ownership: a forged
//! button for somebody else's document is answered "no longer in your archive"), sent by its
//! Telegram `file_id` when the bot sent it before, otherwise uploaded once and its id recorded.

use std::time::Duration;

use app::documents::TelegramFilePart;
use app::error::ApiError;
use app::rag::Answer;
use futures::StreamExt;
use rand::RngCore;
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{
    CallbackQuery, ChatAction, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId,
    ParseMode, User,
};
use uuid::Uuid;

use crate::Ctx;
use crate::i18n::{Lang, Text};

/// The callback data of a source button.
pub const SOURCE_PREFIX: &str = "doc:";
/// Parts of an album sent back at most.
const MAX_PARTS_SENT: usize = 10;
/// Shortest pause between two edits of a growing answer.
const EDIT_EVERY: Duration = Duration::from_millis(1200);

/// `doc:<uuid>` → the document id; anything else is not a source button.
pub fn parse_source(data: &str) -> Option<Uuid> {
    let id = data.strip_prefix(SOURCE_PREFIX)?;
    if id.len() != 36 {
        return None;
    }
    // Exactly the spelling the bot writes (lower-case, hyphenated).
    Uuid::parse_str(id)
        .ok()
        .filter(|uuid| uuid.hyphenated().to_string() == id)
}

fn stream_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn telegram_id(user: &User) -> i64 {
    i64::try_from(user.id.0).unwrap_or(0)
}

fn render(answer: &Answer) -> Text {
    if !answer.found {
        return Text::NotFound;
    }
    Text::Answer {
        generated: answer.generated.clone(),
        passages: answer
            .passages
            .iter()
            .map(|p| (p.source, p.text.clone()))
            .collect(),
        sources: answer
            .sources
            .iter()
            .map(|s| (s.n, s.file_name.clone(), s.page))
            .collect(),
    }
}

fn buttons(answer: &Answer, lang: Lang) -> InlineKeyboardMarkup {
    let mut seen: Vec<Uuid> = Vec::new();
    let rows: Vec<Vec<InlineKeyboardButton>> = answer
        .sources
        .iter()
        .filter(|s| {
            if seen.contains(&s.document_id) {
                false
            } else {
                seen.push(s.document_id);
                true
            }
        })
        .map(|s| {
            vec![InlineKeyboardButton::callback(
                Text::SourceButton {
                    n: s.n,
                    file_name: s.file_name.clone(),
                    page: s.page,
                }
                .render(lang),
                format!("{SOURCE_PREFIX}{}", s.document_id),
            )]
        })
        .collect();
    InlineKeyboardMarkup::new(rows)
}

/// Shows a growing answer: the first piece is sent as a message, later ones edit it.
async fn follow(
    ctx: &Ctx,
    chat: ChatId,
    lang: Lang,
    mut updates: async_nats::Subscriber,
) -> Option<MessageId> {
    let mut message: Option<MessageId> = None;
    let mut shown = String::new();
    let mut last_edit = tokio::time::Instant::now() - EDIT_EVERY;
    while let Some(update) = updates.next().await {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&update.payload) else {
            continue;
        };
        if value["done"].as_bool().unwrap_or(false) {
            break;
        }
        let Some(text) = value["text"].as_str() else {
            continue;
        };
        if text == shown || last_edit.elapsed() < EDIT_EVERY {
            continue;
        }
        let rendered = Text::AnswerGrowing {
            text: text.to_owned(),
        }
        .render(lang);
        last_edit = tokio::time::Instant::now();
        match message {
            None => {
                let request = ctx
                    .bot
                    .send_message(chat, rendered)
                    .parse_mode(ParseMode::Html);
                if let Ok(sent) = ctx.pacer.send(chat.0, request).await {
                    message = Some(sent.id);
                }
            }
            Some(id) => {
                let request = ctx
                    .bot
                    .edit_message_text(chat, id, rendered)
                    .parse_mode(ParseMode::Html);
                let _ = ctx.pacer.send(chat.0, request).await;
            }
        }
        shown = text.to_owned();
    }
    message
}

/// Answers a question from a linked person.
pub async fn on_question(
    ctx: &Ctx,
    chat: ChatId,
    user: &User,
    lang: Lang,
    question: &str,
) -> anyhow::Result<()> {
    let _ = crate::metrics::send(ctx.bot.send_chat_action(chat, ChatAction::Typing)).await;
    let stream = ctx.answers.get().map(|_| stream_id());
    let follower = match (ctx.answers.get(), &stream) {
        (Some((client, env)), Some(id)) => {
            match client.subscribe(format!("{env}.rag.answers.{id}")).await {
                Ok(updates) => Some(updates),
                Err(error) => {
                    tracing::warn!(%error, "answer updates are unavailable");
                    None
                }
            }
        }
        _ => None,
    };
    let asked = async {
        ctx.api
            .call::<_, Answer>(
                "rag/ask",
                Some(telegram_id(user)),
                &json!({ "question": question, "stream": stream }),
            )
            .await
    };
    tokio::pin!(asked);
    let (answer, growing) = match follower {
        Some(updates) => {
            let following = follow(ctx, chat, lang, updates);
            tokio::pin!(following);
            tokio::select! {
                answer = &mut asked => {
                    // The answer is complete: a message that was growing gets its final form.
                    let growing = tokio::time::timeout(Duration::from_millis(50), &mut following)
                        .await
                        .ok()
                        .flatten();
                    (answer, growing)
                }
                growing = &mut following => ((&mut asked).await, growing),
            }
        }
        None => (asked.await, None),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(ApiError::RateLimited { retry_after_secs }) => {
            crate::handlers::say(ctx, chat, &Text::AskTooFast { retry_after_secs }, lang).await?;
            return Ok(());
        }
        Err(ApiError::Validation { .. }) => {
            crate::handlers::say(
                ctx,
                chat,
                &Text::QuestionTooLong {
                    max: app::rag::MAX_QUESTION_CHARS,
                },
                lang,
            )
            .await?;
            return Ok(());
        }
        Err(error) => return crate::handlers::say_error(ctx, chat, lang, &error).await,
    };
    let text = render(&answer).render(lang);
    let markup = buttons(&answer, lang);
    match growing {
        Some(id) => {
            let request = ctx
                .bot
                .edit_message_text(chat, id, text)
                .parse_mode(ParseMode::Html)
                .reply_markup(markup);
            ctx.pacer.send(chat.0, request).await?;
        }
        None => {
            let request = ctx
                .bot
                .send_message(chat, text)
                .parse_mode(ParseMode::Html)
                .reply_markup(markup);
            ctx.pacer.send(chat.0, request).await?;
        }
    }
    Ok(())
}

/// A tapped source button: sends the document's file(s). `None` when the data is not ours.
pub async fn on_callback(ctx: &Ctx, query: &CallbackQuery) -> Option<anyhow::Result<()>> {
    let id = parse_source(query.data.as_deref()?)?;
    Some(send_source(ctx, query, id).await)
}

async fn send_source(ctx: &Ctx, query: &CallbackQuery, id: Uuid) -> anyhow::Result<()> {
    let lang = Lang::from_code(query.from.language_code.as_deref());
    let telegram_user = telegram_id(&query.from);
    let chat = ChatId(telegram_user);
    let parts = match file_parts(ctx, telegram_user, id).await {
        Ok(parts) => parts,
        Err(ApiError::NotFound) => {
            crate::handlers::answer_callback(ctx, query, Some(&Text::SourceGone), lang).await;
            return Ok(());
        }
        Err(error) => {
            crate::handlers::answer_callback(ctx, query, None, lang).await;
            return crate::handlers::say_error(ctx, chat, lang, &error).await;
        }
    };
    crate::handlers::answer_callback(ctx, query, None, lang).await;
    send_parts(ctx, telegram_user, lang, id, parts).await
}

/// The parts of one of the person's documents, as the server describes them for sending.
async fn file_parts(
    ctx: &Ctx,
    telegram_user: i64,
    id: Uuid,
) -> Result<Vec<TelegramFilePart>, ApiError> {
    ctx.api
        .call(
            "documents/telegram-file",
            Some(telegram_user),
            &json!({ "id": id }),
        )
        .await
}

/// Sends a document's files to the person's chat (asked for from the Mini App).
pub async fn send_document(
    ctx: &Ctx,
    telegram_user: i64,
    lang: Lang,
    id: Uuid,
) -> anyhow::Result<()> {
    let chat = ChatId(telegram_user);
    match file_parts(ctx, telegram_user, id).await {
        Ok(parts) => send_parts(ctx, telegram_user, lang, id, parts).await,
        Err(ApiError::NotFound) => {
            crate::handlers::say(ctx, chat, &Text::SourceGone, lang).await?;
            Ok(())
        }
        Err(error) => crate::handlers::say_error(ctx, chat, lang, &error).await,
    }
}

/// Queue-group subscriber to `{env}.telegram.documents.send` (request/reply): acknowledges
/// each request at once, then sends the files.
pub async fn run_sends(
    ctx: std::sync::Arc<Ctx>,
    nats: async_nats::Client,
    env: String,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let subject = format!("{env}.telegram.documents.send");
    let mut requests = nats.queue_subscribe(subject, "dossier-bot".into()).await?;
    // Sends under way: owned here, so they end with the bot (after `DRAIN` on shutdown).
    let mut sending = tokio::task::JoinSet::new();
    loop {
        while sending.try_join_next().is_some() {}
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            message = requests.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let request: app::documents::SendToChatRequest =
            match serde_json::from_slice(&message.payload) {
                Ok(request) => request,
                Err(error) => {
                    tracing::warn!(%error, "an undecodable send request was dropped");
                    continue;
                }
            };
        if let Some(reply) = message.reply {
            let _ = nats.publish(reply, "accepted".into()).await;
        }
        let ctx = ctx.clone();
        sending.spawn(async move {
            let lang = Lang::from_code(request.language_code.as_deref());
            if let Err(error) =
                send_document(&ctx, request.telegram_user_id, lang, request.document_id).await
            {
                tracing::warn!(%error, "a document could not be sent to its chat");
            }
        });
    }
    let _ = tokio::time::timeout(crate::DRAIN, async {
        while sending.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

async fn send_parts(
    ctx: &Ctx,
    telegram_user: i64,
    lang: Lang,
    id: Uuid,
    parts: Vec<TelegramFilePart>,
) -> anyhow::Result<()> {
    let chat = ChatId(telegram_user);
    let _ = crate::metrics::send(ctx.bot.send_chat_action(chat, ChatAction::UploadDocument)).await;
    for part in parts.into_iter().take(MAX_PARTS_SENT) {
        if let Some(file_id) = &part.telegram_file_id {
            let request = ctx
                .bot
                .send_document(chat, InputFile::file_id(file_id.clone().into()));
            match ctx.pacer.send(chat.0, request).await {
                Ok(_) => continue,
                // A file id from another bot token, or expired: upload again below.
                Err(error) => tracing::info!(%error, "a stored file_id was refused; uploading"),
            }
        }
        let bytes = match ctx
            .api
            .download(
                &format!("/documents/{id}/file?part={}", part.part),
                Some(telegram_user),
            )
            .await
        {
            Ok(bytes) => bytes,
            Err(ApiError::NotFound) => {
                crate::handlers::say(ctx, chat, &Text::SourceGone, lang).await?;
                return Ok(());
            }
            Err(error) => return crate::handlers::say_error(ctx, chat, lang, &error).await,
        };
        let request = ctx.bot.send_document(
            chat,
            InputFile::memory(bytes).file_name(part.file_name.clone()),
        );
        let sent = ctx.pacer.send(chat.0, request).await?;
        if let Some(document) = sent.document() {
            let recorded: Result<(), ApiError> = ctx
                .api
                .call(
                    "documents/telegram-file-id",
                    Some(telegram_user),
                    &json!({ "id": id, "part": part.part, "file_id": document.file.id.0 }),
                )
                .await;
            if let Err(error) = recorded {
                tracing::warn!(%error, "a sent file's id could not be recorded");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_source_buttons_parse() {
        let id = Uuid::new_v4();
        assert_eq!(parse_source(&format!("doc:{id}")), Some(id));
        assert!(format!("doc:{id}").len() <= 64);
        for bad in [
            "doc:",
            "doc:not-a-uuid",
            "doc:../../etc/passwd",
            &format!("doc:{id}x"),
            &format!("push:{id}"),
            &format!("doc:{}", id.simple()),
            &format!("doc:{}", id.to_string().to_uppercase()),
        ] {
            assert_eq!(parse_source(bad), None, "{bad}");
        }
    }
}
