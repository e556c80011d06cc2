//! What the bot does with each update.

use std::time::Instant;

use app::error::ApiError;
use app::telegram::{ClaimedUpdate, TelegramProfile, TelegramStatus};
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{
    CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, ParseMode, UpdateKind,
    User, WebAppInfo,
};

use crate::Ctx;
use crate::i18n::{Lang, Text};

/// The chat an update belongs to (its handling order is kept per chat).
pub fn chat_of(update: &Update) -> i64 {
    match &update.kind {
        UpdateKind::Message(message) => message.chat.id.0,
        UpdateKind::CallbackQuery(query) => i64::try_from(query.from.id.0).unwrap_or(0),
        UpdateKind::Error(value) => value["message"]["chat"]["id"].as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Handles one update; failures are reported to the person and logged, never propagated.
/// `claim` says what an earlier attempt at this update left behind (after a crash).
pub async fn handle(ctx: &Ctx, update: Update, claim: &ClaimedUpdate) {
    let started = Instant::now();
    let kind = crate::metrics::update_kind(&update);
    let result = match update.kind {
        UpdateKind::Message(message) => on_message(ctx, message, claim).await,
        UpdateKind::CallbackQuery(query) => on_callback(ctx, query).await,
        UpdateKind::Error(value) => on_unparsed(ctx, &value).await,
        _ => Ok(()),
    };
    crate::metrics::update_handled(kind, started.elapsed(), result.is_ok());
    if let Err(error) = result {
        tracing::warn!(update_id = update.id.0, error = %error, "an update could not be handled");
    }
    ctx.stats.record(started.elapsed());
}

fn telegram_id(user: &User) -> i64 {
    i64::try_from(user.id.0).unwrap_or(0)
}

pub(crate) async fn say(
    ctx: &Ctx,
    chat: ChatId,
    text: &Text,
    lang: Lang,
) -> anyhow::Result<Message> {
    let request = ctx
        .bot
        .send_message(chat, text.render(lang))
        .parse_mode(ParseMode::Html);
    Ok(ctx.pacer.send(chat.0, request).await?)
}

async fn say_with(
    ctx: &Ctx,
    chat: ChatId,
    text: &Text,
    lang: Lang,
    markup: InlineKeyboardMarkup,
) -> anyhow::Result<Message> {
    let request = ctx
        .bot
        .send_message(chat, text.render(lang))
        .parse_mode(ParseMode::Html)
        .reply_markup(markup);
    Ok(ctx.pacer.send(chat.0, request).await?)
}

/// Tells the person about an API failure in words they can use, without internals.
pub(crate) async fn say_error(
    ctx: &Ctx,
    chat: ChatId,
    lang: Lang,
    error: &ApiError,
) -> anyhow::Result<()> {
    let text = match error {
        ApiError::Unavailable | ApiError::RateLimited { .. } | ApiError::Busy { .. } => {
            Text::TryLater
        }
        ApiError::Internal { incident } => Text::SomethingWrong {
            incident: Some(incident.clone()),
        },
        ApiError::TelegramNotLinked => link_first(ctx),
        _ => Text::SomethingWrong { incident: None },
    };
    say(ctx, chat, &text, lang).await?;
    Ok(())
}

pub(crate) fn link_first(ctx: &Ctx) -> Text {
    Text::LinkFirst {
        account_url: account_url(ctx),
    }
}

fn account_url(ctx: &Ctx) -> String {
    ctx.public_url
        .join("/settings")
        .map_or_else(|_| ctx.public_url.to_string(), |u| u.to_string())
}

/// Records the person and their chat through the API and learns whether they are linked.
async fn hello(ctx: &Ctx, user: &User, chat: ChatId) -> Result<TelegramStatus, ApiError> {
    let profile = TelegramProfile {
        chat_id: chat.0,
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        username: user.username.clone(),
        language_code: user.language_code.clone(),
    };
    // Repeated while the API restarts: an update answered "try later" is one the person must
    // send again.
    ctx.api
        .call_retrying(
            "telegram/hello",
            Some(telegram_id(user)),
            &json!({ "profile": profile }),
        )
        .await
}

/// `/command@bot payload` → (`command`, `payload`), or `None` for plain text.
pub fn parse_command(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix('/')?;
    let (head, payload) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(head, payload)| (head, payload.trim()));
    let command = head.split('@').next().unwrap_or("").to_ascii_lowercase();
    if command.is_empty() {
        return None;
    }
    Some((command, payload.to_owned()))
}

fn web_app_button(ctx: &Ctx, text: &Text, lang: Lang, page: &str) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([[InlineKeyboardButton::web_app(
        text.render(lang),
        WebAppInfo {
            url: ctx.mini_app_url(page),
        },
    )]])
}

async fn on_message(ctx: &Ctx, message: Message, claim: &ClaimedUpdate) -> anyhow::Result<()> {
    let Some(user) = message.from.as_ref() else {
        return Ok(());
    };
    if user.is_bot {
        return Ok(());
    }
    if !message.chat.is_private() {
        // A link token is personal: one sent in a group is never used (others could tap it),
        // and the sender learns why nothing happened.
        if let Some(("start", payload)) = message
            .text()
            .and_then(parse_command)
            .as_ref()
            .map(|(c, p)| (c.as_str(), p.as_str()))
            && !payload.is_empty()
        {
            let lang = Lang::from_code(user.language_code.as_deref());
            say(ctx, message.chat.id, &Text::LinkPrivateOnly, lang).await?;
        }
        return Ok(());
    }
    let lang = Lang::from_code(user.language_code.as_deref());
    let chat = message.chat.id;
    let status = match hello(ctx, user, chat).await {
        Ok(status) => status,
        Err(error) => return say_error(ctx, chat, lang, &error).await,
    };
    // The language chosen in Dossier wins over the Telegram client's.
    let lang = status
        .language
        .as_deref()
        .map_or(lang, |code| Lang::from_code(Some(code)));
    if let Some((command, payload)) = message.text().and_then(parse_command) {
        return on_command(ctx, chat, user, lang, &status, &command, &payload).await;
    }
    if let Some(file) = crate::documents::incoming(&message) {
        if !status.linked {
            say(ctx, chat, &link_first(ctx), lang).await?;
            return Ok(());
        }
        return crate::documents::on_file(ctx, &message, user, lang, file, claim).await;
    }
    let reply = match message.text() {
        None => Text::Unsupported,
        Some(_) if !status.linked => link_first(ctx),
        // Plain text from a linked person is a question.
        Some(question) if !question.trim().is_empty() => {
            return crate::ask::on_question(ctx, chat, user, lang, question).await;
        }
        Some(_) => Text::NotUnderstood,
    };
    say(ctx, chat, &reply, lang).await?;
    Ok(())
}

async fn on_command(
    ctx: &Ctx,
    chat: ChatId,
    user: &User,
    lang: Lang,
    status: &TelegramStatus,
    command: &str,
    payload: &str,
) -> anyhow::Result<()> {
    match command {
        "start" if !payload.is_empty() => {
            crate::link::on_start(ctx, chat, user, lang, status, payload).await?;
        }
        "unlink" => {
            let unlinked: Result<bool, ApiError> = ctx
                .api
                .call("telegram/unlink", Some(telegram_id(user)), &json!({}))
                .await;
            match unlinked {
                Ok(_) => {
                    say(ctx, chat, &Text::Unlinked, lang).await?;
                }
                Err(error) => return say_error(ctx, chat, lang, &error).await,
            }
        }
        "start" => {
            let text = match &status.email {
                Some(email) => Text::WelcomeBack {
                    email: email.clone(),
                },
                None => Text::WelcomeNew {
                    first_name: user.first_name.clone(),
                    account_url: account_url(ctx),
                },
            };
            say(ctx, chat, &text, lang).await?;
        }
        "help" => {
            say(ctx, chat, &Text::Help, lang).await?;
        }
        "settings" => {
            let button = web_app_button(ctx, &Text::SettingsButton, lang, "/miniapp/preferences");
            say_with(ctx, chat, &Text::Settings, lang, button).await?;
        }
        "ask" => {
            if !status.linked {
                say(ctx, chat, &link_first(ctx), lang).await?;
            } else if payload.is_empty() {
                say(ctx, chat, &Text::AskHow, lang).await?;
            } else {
                crate::ask::on_question(ctx, chat, user, lang, payload).await?;
            }
        }
        "docs" => {
            if !status.linked {
                say(ctx, chat, &link_first(ctx), lang).await?;
                return Ok(());
            }
            crate::documents::list(ctx, chat, user, lang).await?;
        }
        other => {
            say(
                ctx,
                chat,
                &Text::UnknownCommand {
                    command: format!("/{other}"),
                },
                lang,
            )
            .await?;
        }
    }
    Ok(())
}

/// What an unparsed update looks like, for the log: its kind and the names of its fields,
/// never a value (no text, name, id or token of anyone's).
pub fn unparsed_shape(value: &serde_json::Value) -> (String, Vec<String>) {
    let names = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_object()
            .map(|object| {
                object
                    .keys()
                    .filter(|key| {
                        key.len() <= 64 && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
                    .take(40)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let kinds: Vec<String> = names(value)
        .into_iter()
        .filter(|key| key != "update_id")
        .collect();
    let kind = kinds.first().cloned().unwrap_or_else(|| "unknown".into());
    let mut fields = names(&value[kind.as_str()]);
    fields.sort();
    (kind, fields)
}

/// A message teloxide could not parse (a kind newer than it knows, say): in a private chat the
/// person still gets an answer. Every such update is logged by its shape, so an update the bot
/// cannot read is seen by its operator rather than only counted.
async fn on_unparsed(ctx: &Ctx, value: &serde_json::Value) -> anyhow::Result<()> {
    let (kind, fields) = unparsed_shape(value);
    tracing::warn!(kind, ?fields, "an update the bot cannot parse");
    let message = &value["message"];
    let (Some(chat), Some("private")) = (
        message["chat"]["id"].as_i64(),
        message["chat"]["type"].as_str(),
    ) else {
        return Ok(());
    };
    if message["from"]["is_bot"].as_bool().unwrap_or(true) {
        return Ok(());
    }
    let lang = Lang::from_code(message["from"]["language_code"].as_str());
    say(ctx, ChatId(chat), &Text::Unsupported, lang).await?;
    Ok(())
}

async fn on_callback(ctx: &Ctx, query: CallbackQuery) -> anyhow::Result<()> {
    if let Some(handled) = crate::link::on_callback(ctx, &query).await {
        return handled;
    }
    if let Some(handled) = crate::push::on_callback(ctx, &query).await {
        return handled;
    }
    if let Some(handled) = crate::ask::on_callback(ctx, &query).await {
        return handled;
    }
    let lang = Lang::from_code(query.from.language_code.as_deref());
    // Not a button the bot knows: stale or forged.
    tracing::info!(
        data_len = query.data.as_deref().map_or(0, str::len),
        "unknown callback"
    );
    answer_callback(ctx, &query, Some(&Text::ButtonExpired), lang).await;
    Ok(())
}

/// How a refused answer to a linking question (deep link or push request) comes out: the
/// question's new text, or only a toast when the question itself still stands.
pub(crate) fn refused_answer(error: &ApiError, expired: Text) -> (Option<Text>, Option<Text>) {
    match error {
        ApiError::LinkExpired => (Some(expired), None),
        ApiError::LinkUsed => (None, Some(Text::PushAlreadyAnswered)),
        ApiError::Forbidden => (None, Some(Text::PushNotForYou)),
        ApiError::Conflict { .. } => (Some(Text::LinkConflict), None),
        _ => (None, Some(Text::TryLater)),
    }
}

/// Settles a press on a question's button: answers the press (best effort, with the toast)
/// and turns the question into its outcome, without its buttons, in the chat's order.
pub(crate) async fn settle_question(
    ctx: &Ctx,
    query: &CallbackQuery,
    (outcome, toast): (Option<Text>, Option<Text>),
    lang: Lang,
) -> anyhow::Result<()> {
    answer_callback(ctx, query, toast.as_ref(), lang).await;
    if let (Some(outcome), Some(message)) = (outcome, query.regular_message()) {
        let edit = ctx
            .bot
            .edit_message_text(message.chat.id, message.id, outcome.render(lang))
            .parse_mode(ParseMode::Html);
        ctx.pacer.send(message.chat.id.0, edit).await?;
    }
    Ok(())
}

/// Answers a button press (stops the client's spinner, optionally with a toast). Best effort:
/// Telegram refuses an answer that comes late ("query is too old", e.g. after a restart), and
/// the work the press asked for must go on regardless.
pub(crate) async fn answer_callback(
    ctx: &Ctx,
    query: &CallbackQuery,
    toast: Option<&Text>,
    lang: Lang,
) {
    let mut answer = ctx.bot.answer_callback_query(query.id.clone());
    if let Some(toast) = toast {
        answer = answer.text(toast.render(lang));
    }
    if let Err(error) = crate::metrics::send(answer).await {
        tracing::info!(%error, "a button press could not be answered (late?); going on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsed_update_is_described_by_field_names_only() {
        let update = serde_json::json!({
            "update_id": 7,
            "message": {
                "message_id": 1,
                "chat": {"id": 42, "type": "private"},
                "from": {"id": 42, "first_name": "Secret Name"},
                "text": "my password is hunter2",
                "future_thing": {"token": "123456:ABC"},
                "Weird Key hunter2": 1
            }
        });
        let (kind, fields) = unparsed_shape(&update);
        assert_eq!(kind, "message");
        assert_eq!(
            fields,
            ["chat", "from", "future_thing", "message_id", "text"]
        );
        let logged = format!("{kind} {fields:?}");
        for secret in ["hunter2", "Secret Name", "123456", "42"] {
            assert!(!logged.contains(secret), "{logged}");
        }
        assert_eq!(unparsed_shape(&serde_json::json!(null)).0, "unknown");
    }

    #[test]
    fn commands_are_parsed_with_bot_names_and_payloads() {
        assert_eq!(
            parse_command("/start"),
            Some(("start".into(), String::new()))
        );
        assert_eq!(
            parse_command("/start@dossier_bot  abc-123 "),
            Some(("start".into(), "abc-123".into()))
        );
        assert_eq!(parse_command("/HELP"), Some(("help".into(), String::new())));
        assert_eq!(parse_command("hello"), None);
        assert_eq!(parse_command("/"), None);
    }
}
