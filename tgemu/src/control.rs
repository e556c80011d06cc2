//! The control API: simulated users send messages, files and button presses; tests and the
//! chat page read back what the bot did. Not part of Telegram's API.

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::methods::{FileKind, file_field, image_size, webhook_info};
use crate::params::{self, Upload};
use crate::{Emulator, World, bad_request, now_secs};

pub fn router() -> Router<Emulator> {
    Router::new()
        .route("/bot", get(bot))
        .route("/users/{user_id}/messages", post(user_sends_text))
        .route("/users/{user_id}/documents", post(user_sends_document))
        .route("/users/{user_id}/photos", post(user_sends_photo))
        .route("/users/{user_id}/raw", post(user_sends_raw))
        .route("/users/{user_id}/callbacks", post(user_presses_button))
        .route("/chats/{chat_id}/sent", get(sent_to_chat))
        .route("/chats/{chat_id}/history", get(chat_history))
        .route("/chats/{chat_id}/actions", get(chat_actions))
        .route("/chats/{chat_id}/edits", get(chat_edits))
        .route("/files/{file_id}", get(file_content))
        .route("/commands", get(commands))
        .route("/menu-button", get(menu_button))
        .route("/webhook", get(webhook))
        .route("/callback-answers", get(callback_answers))
        .route("/stats", get(stats))
}

pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// Who a simulated user is; every field but the id is optional.
#[derive(Debug, Default, Deserialize)]
struct Sender {
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    language_code: Option<String>,
    /// The message is sent in this group (a negative chat id) rather than the private chat.
    #[serde(default)]
    group: Option<i64>,
}

fn user_json(user_id: i64, sender: &Sender) -> Value {
    let mut user = json!({
        "id": user_id,
        "is_bot": false,
        "first_name": sender.first_name.clone().unwrap_or_else(|| format!("User {user_id}")),
        "language_code": sender.language_code.clone().unwrap_or_else(|| "en".into()),
    });
    if let Some(username) = &sender.username {
        user["username"] = json!(username);
    }
    user
}

/// Records a message from a user in their private chat (chat id = user id), or in the group
/// `group` (a negative id, as Telegram's), and queues the update.
fn user_message(world: &mut World, user_id: i64, sender: &Sender, fields: Value) -> Response {
    let from = user_json(user_id, sender);
    let message_id = world.new_message_id();
    let (chat_id, chat) = match sender.group {
        Some(group) => (
            group,
            json!({ "id": group, "type": "group", "title": format!("Group {group}") }),
        ),
        None => (
            user_id,
            json!({ "id": user_id, "type": "private", "first_name": from["first_name"] }),
        ),
    };
    let mut message = json!({
        "message_id": message_id,
        "date": now_secs(),
        "chat": chat,
        "from": from,
    });
    if let (Some(target), Value::Object(fields)) = (message.as_object_mut(), fields) {
        target.extend(fields);
    }
    world
        .history
        .entry(chat_id)
        .or_default()
        .push(message.clone());
    match world.push_update("message", message.clone()) {
        Some(update) => (StatusCode::CREATED, Json(update)).into_response(),
        // The bot did not ask for messages: Telegram would not deliver it.
        None => (StatusCode::ACCEPTED, Json(json!({ "message": message }))).into_response(),
    }
}

#[derive(Deserialize)]
struct UserText {
    text: String,
    #[serde(flatten)]
    sender: Sender,
}

async fn user_sends_text(
    State(emulator): State<Emulator>,
    Path(user_id): Path<i64>,
    Json(input): Json<UserText>,
) -> Response {
    if input.text.is_empty() {
        return bad_request("Bad Request: message text is empty");
    }
    let mut fields = json!({ "text": input.text });
    if input.text.starts_with('/') {
        let len = input
            .text
            .split_whitespace()
            .next()
            .map_or(0, |c| c.encode_utf16().count());
        fields["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": len }]);
    }
    let response = user_message(
        &mut *emulator.world.lock().await,
        user_id,
        &input.sender,
        fields,
    );
    emulator.arrived.notify_waiters();
    response
}

/// A message of any other kind (sticker, voice, location…): the given fields are merged in.
async fn user_sends_raw(
    State(emulator): State<Emulator>,
    Path(user_id): Path<i64>,
    Json(fields): Json<Value>,
) -> Response {
    if !fields.is_object() {
        return bad_request("Bad Request: a JSON object of message fields is expected");
    }
    let sender = Sender {
        first_name: fields["from_first_name"].as_str().map(str::to_owned),
        username: None,
        language_code: fields["from_language_code"].as_str().map(str::to_owned),
        group: None,
    };
    let mut fields = fields;
    if let Some(object) = fields.as_object_mut() {
        object.remove("from_first_name");
        object.remove("from_language_code");
    }
    let response = user_message(&mut *emulator.world.lock().await, user_id, &sender, fields);
    emulator.arrived.notify_waiters();
    response
}

/// A file from a user: multipart (`file`, `caption`, `media_group_id`, sender fields) or JSON
/// (`file_name`, `mime_type`, `content_base64`, `caption`, `media_group_id`, sender fields).
/// Files sent with the same `media_group_id` form an album, as in Telegram.
async fn read_user_file(
    request: Request,
) -> Result<(Upload, Option<String>, Option<String>, Sender), String> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let params = params::read(request).await?;
    let text = |name: &str| params.str(name).map(str::to_owned);
    let sender = Sender {
        first_name: text("first_name"),
        username: text("username"),
        language_code: text("language_code"),
        group: params.str("group").and_then(|g| g.parse().ok()),
    };
    let caption = text("caption").filter(|c| !c.is_empty());
    let media_group_id = text("media_group_id").filter(|c| !c.is_empty());
    let upload = if is_json {
        let content = params.str("content_base64").unwrap_or("");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|_| "Bad Request: content_base64 is not base64".to_owned())?;
        Upload {
            file_name: text("file_name"),
            content_type: text("mime_type"),
            bytes: bytes.into(),
        }
    } else {
        params
            .files
            .get("file")
            .cloned()
            .ok_or("Bad Request: a `file` part is expected")?
    };
    Ok((upload, caption, media_group_id, sender))
}

async fn user_sends_file(
    emulator: Emulator,
    user_id: i64,
    request: Request,
    kind: FileKind,
) -> Response {
    let (upload, caption, media_group_id, sender) = match read_user_file(request).await {
        Ok(read) => read,
        Err(description) => return bad_request(&description),
    };
    if kind == FileKind::Photo && image_size(&upload.bytes).is_none() {
        return bad_request("Bad Request: a photo must be a PNG or JPEG image");
    }
    let mut world = emulator.world.lock().await;
    let folder = if kind == FileKind::Photo {
        "photos"
    } else {
        "documents"
    };
    let (file_id, file) = world.store_file(&upload, folder);
    let field = if kind == FileKind::Photo {
        "photo"
    } else {
        "document"
    };
    let mut fields = json!({ field: file_field(kind, &file_id, &file) });
    if let Some(caption) = caption {
        fields["caption"] = json!(caption);
    }
    if let Some(group) = media_group_id {
        fields["media_group_id"] = json!(group);
    }
    let response = user_message(&mut world, user_id, &sender, fields);
    drop(world);
    emulator.arrived.notify_waiters();
    response
}

async fn user_sends_document(
    State(emulator): State<Emulator>,
    Path(user_id): Path<i64>,
    request: Request,
) -> Response {
    user_sends_file(emulator, user_id, request, FileKind::Document).await
}

async fn user_sends_photo(
    State(emulator): State<Emulator>,
    Path(user_id): Path<i64>,
    request: Request,
) -> Response {
    user_sends_file(emulator, user_id, request, FileKind::Photo).await
}

#[derive(Deserialize)]
struct ButtonPress {
    message_id: i64,
    data: String,
    /// Plays a tampered client: the data need not be on the message's keyboard (Telegram
    /// itself would refuse, but a bot must not rely on that).
    #[serde(default)]
    forged: bool,
    /// Plays a press the bot reaches only after Telegram stopped waiting for its answer (a
    /// restart, a long queue): `answerCallbackQuery` then fails with "query is too old", as
    /// Telegram answers after its window.
    #[serde(default)]
    stale: bool,
    #[serde(flatten)]
    sender: Sender,
}

/// A user presses an inline button under one of the bot's messages in their chat.
async fn user_presses_button(
    State(emulator): State<Emulator>,
    Path(user_id): Path<i64>,
    Json(press): Json<ButtonPress>,
) -> Response {
    let mut world = emulator.world.lock().await;
    let Some(message) = world
        .find_message(user_id, press.message_id)
        .map(|m| m.clone())
    else {
        return bad_request("Bad Request: message not found");
    };
    let has_button = message["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .any(|b| b["callback_data"] == press.data.as_str());
    if !has_button && !press.forged {
        return bad_request("Bad Request: the message has no button with this callback_data");
    }
    let id = format!("{}{}", user_id, world.next_update_id);
    // A stale press can no longer be answered: as if already past Telegram's window.
    world.callbacks.insert(id.clone(), press.stale);
    let query = json!({
        "id": id,
        "from": user_json(user_id, &press.sender),
        "message": message,
        "chat_instance": format!("-{user_id}"),
        "data": press.data,
    });
    let response = match world.push_update("callback_query", query) {
        Some(update) => (StatusCode::CREATED, Json(update)).into_response(),
        None => (StatusCode::ACCEPTED, Json(json!({}))).into_response(),
    };
    drop(world);
    emulator.arrived.notify_waiters();
    response
}

async fn sent_to_chat(State(emulator): State<Emulator>, Path(chat_id): Path<i64>) -> Response {
    let world = emulator.world.lock().await;
    let bot_id = emulator.bot.id;
    let sent: Vec<Value> = world
        .history
        .get(&chat_id)
        .into_iter()
        .flatten()
        .filter(|m| m["from"]["id"] == bot_id)
        .cloned()
        .collect();
    Json(sent).into_response()
}

async fn chat_history(State(emulator): State<Emulator>, Path(chat_id): Path<i64>) -> Response {
    let world = emulator.world.lock().await;
    Json(world.history.get(&chat_id).cloned().unwrap_or_default()).into_response()
}

async fn chat_actions(State(emulator): State<Emulator>, Path(chat_id): Path<i64>) -> Response {
    let world = emulator.world.lock().await;
    Json(world.actions.get(&chat_id).cloned().unwrap_or_default()).into_response()
}

/// The bot's text edits in a chat, in order (what a person saw change).
async fn chat_edits(State(emulator): State<Emulator>, Path(chat_id): Path<i64>) -> Response {
    let world = emulator.world.lock().await;
    Json(world.edits.get(&chat_id).cloned().unwrap_or_default()).into_response()
}

async fn file_content(State(emulator): State<Emulator>, Path(file_id): Path<String>) -> Response {
    let world = emulator.world.lock().await;
    match world.files.get(&file_id) {
        Some(file) => {
            let name = file
                .file_name
                .clone()
                .unwrap_or_else(|| "file".into())
                .replace(['"', '\\', '\r', '\n'], "_");
            (
                [
                    (
                        header::CONTENT_TYPE,
                        file.mime_type
                            .clone()
                            .unwrap_or_else(|| "application/octet-stream".into()),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"{name}\""),
                    ),
                ],
                file.bytes.clone(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

async fn bot(State(emulator): State<Emulator>) -> Response {
    Json(json!({
        "id": emulator.bot.id,
        "username": emulator.bot.username,
        "first_name": emulator.bot.first_name,
    }))
    .into_response()
}

async fn commands(State(emulator): State<Emulator>) -> Response {
    Json(emulator.world.lock().await.commands.clone()).into_response()
}

async fn menu_button(State(emulator): State<Emulator>) -> Response {
    Json(emulator.world.lock().await.menu_button.clone()).into_response()
}

async fn webhook(State(emulator): State<Emulator>) -> Response {
    Json(webhook_info(&emulator).await).into_response()
}

async fn callback_answers(State(emulator): State<Emulator>) -> Response {
    Json(emulator.world.lock().await.callback_answers.clone()).into_response()
}

async fn stats(State(emulator): State<Emulator>) -> Response {
    let world = emulator.world.lock().await;
    Json(json!({
        "too_many_requests": world.too_many_requests,
        "pending_updates": world.pending.len(),
        "next_update_id": world.next_update_id,
        "polls": world.poll_generation,
        "conflicts": world.conflicts,
    }))
    .into_response()
}
