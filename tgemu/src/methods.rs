//! The Bot API methods a bot calls, answered as Telegram answers them.

use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::params::{self, Params, Upload, int_of};
use crate::{
    Emulator, MAX_CAPTION_CHARS, MAX_DOWNLOAD_BYTES, MAX_POLL, MAX_TEXT_CHARS, MAX_UPLOAD_BYTES,
    Webhook, api_error, bad_request, markup, now_millis, now_secs, ok, too_many_requests,
};

const CHAT_ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

#[allow(clippy::result_large_err)]
fn check_token(emulator: &Emulator, bot_token: &str) -> Result<(), Response> {
    let Some(token) = bot_token.strip_prefix("bot") else {
        return Err(api_error(StatusCode::NOT_FOUND, "Not Found"));
    };
    // Telegram answers an unknown token with 401 before looking at the method.
    if token != emulator.bot.token {
        return Err(api_error(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    Ok(())
}

pub async fn bot_method(
    State(emulator): State<Emulator>,
    Path((bot_token, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if let Err(response) = check_token(&emulator, &bot_token) {
        return response;
    }
    let params = match params::read(request).await {
        Ok(params) => params,
        Err(description) if description.starts_with("Request Entity Too Large") => {
            return api_error(StatusCode::PAYLOAD_TOO_LARGE, &description);
        }
        Err(description) => return bad_request(&description),
    };
    let result = match method.to_ascii_lowercase().as_str() {
        "getme" => Ok(get_me(&emulator)),
        "getupdates" => return get_updates(&emulator, &params).await,
        "setwebhook" => set_webhook(&emulator, &params).await,
        "deletewebhook" => delete_webhook(&emulator, &params).await,
        "getwebhookinfo" => Ok(webhook_info(&emulator).await),
        "sendmessage" => return send_message(&emulator, &params).await,
        "senddocument" => return send_file(&emulator, &params, FileKind::Document).await,
        "sendphoto" => return send_file(&emulator, &params, FileKind::Photo).await,
        "editmessagetext" => edit_message(&emulator, &params, true).await,
        "editmessagereplymarkup" => edit_message(&emulator, &params, false).await,
        "deletemessage" => delete_message(&emulator, &params).await,
        "answercallbackquery" => answer_callback_query(&emulator, &params).await,
        "sendchataction" => send_chat_action(&emulator, &params).await,
        "getfile" => get_file(&emulator, &params).await,
        "setmycommands" => set_my_commands(&emulator, &params).await,
        "getmycommands" => Ok(emulator.world.lock().await.commands.clone()),
        "deletemycommands" => {
            emulator.world.lock().await.commands = json!([]);
            Ok(json!(true))
        }
        "setchatmenubutton" => set_menu_button(&emulator, &params).await,
        "getchatmenubutton" => Ok(emulator.world.lock().await.menu_button.clone()),
        "close" | "logout" => Ok(json!(true)),
        _ => Err("Not Found: method not found".to_owned()),
    };
    match result {
        Ok(value) => ok(value),
        Err(description) if description.starts_with("Not Found") => {
            api_error(StatusCode::NOT_FOUND, &description)
        }
        Err(description) => bad_request(&description),
    }
}

fn get_me(emulator: &Emulator) -> Value {
    json!({
        "id": emulator.bot.id,
        "is_bot": true,
        "first_name": emulator.bot.first_name,
        "username": emulator.bot.username,
        "can_join_groups": false,
        "can_read_all_group_messages": false,
        "supports_inline_queries": false,
        "can_connect_to_business": false,
        "has_main_web_app": false,
        "has_topics_enabled": false,
        "allows_users_to_create_topics": false,
    })
}

fn chat_id(params: &Params) -> Result<i64, String> {
    params
        .get("chat_id")
        .and_then(int_of)
        .ok_or_else(|| "Bad Request: chat_id is empty".to_owned())
}

fn bot_from(emulator: &Emulator) -> Value {
    json!({
        "id": emulator.bot.id,
        "is_bot": true,
        "first_name": emulator.bot.first_name,
        "username": emulator.bot.username,
    })
}

async fn get_updates(emulator: &Emulator, params: &Params) -> Response {
    let offset = params.int("offset").unwrap_or(0);
    let limit = params.int("limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout =
        Duration::from_secs(params.int("timeout").unwrap_or(0).max(0) as u64).min(MAX_POLL);
    let deadline = tokio::time::Instant::now() + timeout;
    let generation = {
        let mut world = emulator.world.lock().await;
        if world.webhook.is_some() {
            return api_error(
                StatusCode::CONFLICT,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            );
        }
        if let Some(allowed) = params.get("allowed_updates").and_then(Value::as_array) {
            world.allowed_updates = allowed
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
        }
        world.poll_generation += 1;
        world.poll_generation
    };
    // A newer poll ends this one (Telegram's "terminated by other getUpdates request").
    emulator.arrived.notify_waiters();
    loop {
        // Register interest before looking, so an update arriving in between wakes us.
        let notified = emulator.arrived.notified();
        {
            let mut world = emulator.world.lock().await;
            if world.poll_generation != generation {
                world.conflicts += 1;
                return api_error(
                    StatusCode::CONFLICT,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                );
            }
            // An offset confirms (forgets) every update below it.
            while world
                .pending
                .front()
                .and_then(|u| u["update_id"].as_i64())
                .is_some_and(|id| id < offset)
            {
                world.pending.pop_front();
            }
            let ready: Vec<Value> = world.pending.iter().take(limit).cloned().collect();
            if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
                return ok(Value::Array(ready));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ok(json!([]));
        }
    }
}

async fn set_webhook(emulator: &Emulator, params: &Params) -> Result<Value, String> {
    let url = params.str("url").unwrap_or("").to_owned();
    let secret = params.str("secret_token").map(str::to_owned);
    if let Some(secret) = &secret
        && (secret.is_empty()
            || secret.len() > 256
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return Err("Bad Request: secret token contains unallowed characters".into());
    }
    let mut world = emulator.world.lock().await;
    if params.bool("drop_pending_updates") {
        world.pending.clear();
    }
    if let Some(allowed) = params.get("allowed_updates").and_then(Value::as_array) {
        world.allowed_updates = allowed
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
    }
    if url.is_empty() {
        world.webhook = None;
        return Ok(json!(true));
    }
    if url::Url::parse(&url).is_err() {
        return Err("Bad Request: bad webhook: invalid URL".into());
    }
    world.webhook = Some(Webhook {
        url,
        secret_token: secret,
        last_error: None,
    });
    // Any poll still waiting ends, as on Telegram.
    world.poll_generation += 1;
    drop(world);
    emulator.arrived.notify_waiters();
    Ok(json!(true))
}

async fn delete_webhook(emulator: &Emulator, params: &Params) -> Result<Value, String> {
    let mut world = emulator.world.lock().await;
    world.webhook = None;
    if params.bool("drop_pending_updates") {
        world.pending.clear();
    }
    Ok(json!(true))
}

pub async fn webhook_info(emulator: &Emulator) -> Value {
    let world = emulator.world.lock().await;
    let mut info = json!({
        "url": world.webhook.as_ref().map_or("", |w| w.url.as_str()),
        "has_custom_certificate": false,
        "pending_update_count": world.pending.len(),
    });
    if let Some((date, message)) = world.webhook.as_ref().and_then(|w| w.last_error.clone()) {
        info["last_error_date"] = json!(date);
        info["last_error_message"] = json!(message);
    }
    if !world.allowed_updates.is_empty() {
        info["allowed_updates"] = json!(world.allowed_updates);
    }
    info
}

/// Text or caption after formatting, with Telegram's length limit applied.
fn formatted(
    params: &Params,
    field: &str,
    entities_field: &str,
    max_chars: usize,
) -> Result<(String, Option<Value>), String> {
    let raw = params.str(field).unwrap_or("");
    let (text, entities) =
        markup::format(raw, params.str("parse_mode"), params.get(entities_field))?;
    if text.chars().count() > max_chars {
        return Err(if field == "text" {
            "Bad Request: message is too long".into()
        } else {
            "Bad Request: message caption is too long".into()
        });
    }
    Ok((text, entities))
}

fn reply_markup(params: &Params) -> Result<Option<Value>, String> {
    match params.get("reply_markup") {
        None | Some(Value::Null) => Ok(None),
        Some(markup) => {
            markup::check_reply_markup(markup)?;
            Ok(Some(markup.clone()))
        }
    }
}

/// Counts a send against the flood limits, or answers 429.
#[allow(clippy::result_large_err)]
async fn admit(emulator: &Emulator, chat_id: i64) -> Result<(), Response> {
    let mut world = emulator.world.lock().await;
    match world.limiter.admit(chat_id, Instant::now()) {
        Ok(()) => Ok(()),
        Err(retry_after) => {
            world.too_many_requests += 1;
            Err(too_many_requests(retry_after))
        }
    }
}

async fn record_bot_message(emulator: &Emulator, chat_id: i64, fields: Value) -> Value {
    let mut world = emulator.world.lock().await;
    let message_id = world.new_message_id();
    let mut message = json!({
        "message_id": message_id,
        "date": now_secs(),
        "chat": { "id": chat_id, "type": if chat_id > 0 { "private" } else { "group" } },
        "from": bot_from(emulator),
    });
    if let (Some(target), Value::Object(fields)) = (message.as_object_mut(), fields) {
        target.extend(fields);
    }
    world
        .history
        .entry(chat_id)
        .or_default()
        .push(message.clone());
    message
}

async fn send_message(emulator: &Emulator, params: &Params) -> Response {
    let checked = (|| -> Result<_, String> {
        let chat_id = chat_id(params)?;
        if params.str("text").unwrap_or("").trim().is_empty() {
            return Err("Bad Request: message text is empty".to_owned());
        }
        let (text, entities) = formatted(params, "text", "entities", MAX_TEXT_CHARS)?;
        let markup = reply_markup(params)?;
        Ok((chat_id, text, entities, markup))
    })();
    let (chat_id, text, entities, markup) = match checked {
        Ok(checked) => checked,
        Err(description) => return bad_request(&description),
    };
    if let Err(response) = admit(emulator, chat_id).await {
        return response;
    }
    let mut fields = json!({ "text": text });
    if let Some(entities) = entities {
        fields["entities"] = entities;
    }
    if let Some(markup) = markup {
        fields["reply_markup"] = markup;
    }
    ok(record_bot_message(emulator, chat_id, fields).await)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Document,
    Photo,
}

impl FileKind {
    fn field(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Photo => "photo",
        }
    }
}

/// Width and height of a PNG or JPEG, read from its header.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((w, h));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
                let h = u32::from(u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]));
                let w = u32::from(u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]));
                return Some((w, h));
            }
            i += 2 + len;
        }
    }
    None
}

/// The message field for a stored file (`document` object or `photo` sizes).
pub fn file_field(kind: FileKind, file_id: &str, file: &crate::StoredFile) -> Value {
    match kind {
        FileKind::Document => {
            let mut document = json!({
                "file_id": file_id,
                "file_unique_id": file.unique_id,
                "file_size": file.bytes.len(),
            });
            if let Some(name) = &file.file_name {
                document["file_name"] = json!(name);
            }
            if let Some(mime) = &file.mime_type {
                document["mime_type"] = json!(mime);
            }
            document
        }
        FileKind::Photo => {
            let (width, height) = image_size(&file.bytes).unwrap_or((0, 0));
            json!([{
                "file_id": file_id,
                "file_unique_id": file.unique_id,
                "file_size": file.bytes.len(),
                "width": width,
                "height": height,
            }])
        }
    }
}

async fn send_file(emulator: &Emulator, params: &Params, kind: FileKind) -> Response {
    let field = kind.field();
    let checked = (|| -> Result<_, String> {
        let chat_id = chat_id(params)?;
        let (caption, entities) =
            formatted(params, "caption", "caption_entities", MAX_CAPTION_CHARS)?;
        let markup = reply_markup(params)?;
        Ok((chat_id, caption, entities, markup))
    })();
    let (chat_id, caption, entities, markup) = match checked {
        Ok(checked) => checked,
        Err(description) => return bad_request(&description),
    };
    // The file: an upload (the field itself, or `attach://name`), or an existing file_id.
    let upload: Option<Upload> = params.files.get(field).cloned().or_else(|| {
        params
            .str(field)
            .and_then(|v| v.strip_prefix("attach://"))
            .and_then(|name| params.files.get(name).cloned())
    });
    let existing = params.str(field).filter(|v| !v.starts_with("attach://"));
    if let Some(upload) = &upload
        && upload.bytes.len() > MAX_UPLOAD_BYTES
    {
        return api_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    if upload.is_none() && existing.is_none() {
        return bad_request(&format!("Bad Request: there is no {field} in the request"));
    }
    if let Some(value) = existing
        && (value.starts_with("http://") || value.starts_with("https://"))
    {
        return bad_request(
            "Bad Request: failed to get HTTP URL content (the emulator does not fetch URLs)",
        );
    }
    if let Some(upload) = &upload
        && kind == FileKind::Photo
        && image_size(&upload.bytes).is_none()
    {
        return bad_request("Bad Request: IMAGE_PROCESS_FAILED");
    }
    if let Err(response) = admit(emulator, chat_id).await {
        return response;
    }
    let file_value = {
        let mut world = emulator.world.lock().await;
        let (file_id, file) = match (&upload, existing) {
            (Some(upload), _) => {
                let folder = if kind == FileKind::Photo {
                    "photos"
                } else {
                    "documents"
                };
                world.store_file(upload, folder)
            }
            (None, Some(file_id)) => match world.files.get(file_id) {
                Some(file) => (file_id.to_owned(), file.clone()),
                None => {
                    return bad_request("Bad Request: wrong file identifier/HTTP URL specified");
                }
            },
            (None, None) => return bad_request("Bad Request: no file"),
        };
        file_field(kind, &file_id, &file)
    };
    let mut fields = json!({ field: file_value });
    if !caption.is_empty() {
        fields["caption"] = json!(caption);
    }
    if let Some(entities) = entities {
        fields["caption_entities"] = entities;
    }
    if let Some(markup) = markup {
        fields["reply_markup"] = markup;
    }
    ok(record_bot_message(emulator, chat_id, fields).await)
}

async fn edit_message(emulator: &Emulator, params: &Params, text: bool) -> Result<Value, String> {
    let chat_id = chat_id(params)?;
    let message_id = params
        .int("message_id")
        .ok_or("Bad Request: message_id is empty")?;
    let new_text = if text {
        if params.str("text").unwrap_or("").trim().is_empty() {
            return Err("Bad Request: message text is empty".into());
        }
        Some(formatted(params, "text", "entities", MAX_TEXT_CHARS)?)
    } else {
        None
    };
    let markup = reply_markup(params)?;
    let bot_id = emulator.bot.id;
    let mut world = emulator.world.lock().await;
    let message = world
        .find_message(chat_id, message_id)
        .filter(|m| m["from"]["id"] == bot_id)
        .ok_or("Bad Request: message to edit not found")?;
    let before = message.clone();
    if let Some((text, entities)) = new_text {
        if message.get("text").is_none() {
            return Err("Bad Request: there is no text in the message to edit".into());
        }
        message["text"] = json!(text);
        match entities {
            Some(entities) => message["entities"] = entities,
            None => {
                if let Some(object) = message.as_object_mut() {
                    object.remove("entities");
                }
            }
        }
    }
    // An edit without reply_markup removes the keyboard, as on Telegram.
    match markup {
        Some(markup) => message["reply_markup"] = markup,
        None => {
            if let Some(object) = message.as_object_mut() {
                object.remove("reply_markup");
            }
        }
    }
    if *message == before {
        return Err("Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message".into());
    }
    message["edit_date"] = json!(now_secs());
    let edited = message.clone();
    if text {
        world.edits.entry(chat_id).or_default().push(json!({
            "message_id": message_id,
            "text": edited["text"],
        }));
    }
    Ok(edited)
}

async fn delete_message(emulator: &Emulator, params: &Params) -> Result<Value, String> {
    let chat_id = chat_id(params)?;
    let message_id = params
        .int("message_id")
        .ok_or("Bad Request: message_id is empty")?;
    let mut world = emulator.world.lock().await;
    let message = world
        .find_message(chat_id, message_id)
        .ok_or("Bad Request: message to delete not found")?;
    *message = json!({
        "message_id": message_id,
        "date": message["date"],
        "chat": message["chat"],
        "from": message["from"],
        "deleted": true,
    });
    Ok(json!(true))
}

async fn answer_callback_query(emulator: &Emulator, params: &Params) -> Result<Value, String> {
    let id = params.str("callback_query_id").unwrap_or("").to_owned();
    let mut world = emulator.world.lock().await;
    match world.callbacks.get_mut(&id) {
        Some(answered) if !*answered => *answered = true,
        _ => {
            return Err(
                "Bad Request: query is too old and response timeout expired or query ID is invalid"
                    .into(),
            );
        }
    }
    if params.str("text").is_some_and(|t| t.chars().count() > 200) {
        return Err("Bad Request: MESSAGE_TOO_LONG".into());
    }
    world.callback_answers.push(json!({
        "callback_query_id": id,
        "text": params.get("text"),
        "show_alert": params.bool("show_alert"),
        "url": params.get("url"),
    }));
    Ok(json!(true))
}

async fn send_chat_action(emulator: &Emulator, params: &Params) -> Result<Value, String> {
    let chat_id = chat_id(params)?;
    let action = params.str("action").unwrap_or("");
    if !CHAT_ACTIONS.contains(&action) {
        return Err("Bad Request: wrong parameter action in request".into());
    }
    let mut world = emulator.world.lock().await;
    let actions = world.actions.entry(chat_id).or_default();
    actions.push(json!({ "action": action, "at": now_millis() }));
    if actions.len() > 100 {
        actions.remove(0);
    }
    Ok(json!(true))
}

async fn get_file(emulator: &Emulator, params: &Params) -> Result<Value, String> {
    let file_id = params.str("file_id").unwrap_or("");
    let world = emulator.world.lock().await;
    let file = world
        .files
        .get(file_id)
        .ok_or("Bad Request: invalid file_id")?;
    if file.bytes.len() > MAX_DOWNLOAD_BYTES {
        return Err("Bad Request: file is too big".into());
    }
    Ok(json!({
        "file_id": file_id,
        "file_unique_id": file.unique_id,
        "file_size": file.bytes.len(),
        "file_path": file.path,
    }))
}

/// `GET /file/bot<token>/<file_path>`: the file's bytes (20 MB at most, as Telegram).
pub async fn download(
    State(emulator): State<Emulator>,
    Path((bot_token, path)): Path<(String, String)>,
) -> Response {
    if let Err(response) = check_token(&emulator, &bot_token) {
        return response;
    }
    let world = emulator.world.lock().await;
    match world.files.values().find(|f| f.path == path) {
        Some(file) if file.bytes.len() <= MAX_DOWNLOAD_BYTES => (
            [(
                header::CONTENT_TYPE,
                file.mime_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
            )],
            file.bytes.clone(),
        )
            .into_response(),
        Some(_) => bad_request("Bad Request: file is too big"),
        None => api_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn set_my_commands(emulator: &Emulator, params: &Params) -> Result<Value, String> {
    let commands = params
        .get("commands")
        .and_then(Value::as_array)
        .ok_or("Bad Request: can't parse commands JSON object")?;
    if commands.len() > 100 {
        return Err("Bad Request: too many commands".into());
    }
    for command in commands {
        let name = command["command"].as_str().unwrap_or("");
        let description = command["description"].as_str().unwrap_or("");
        let name_ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err("Bad Request: BOT_COMMAND_INVALID".into());
        }
        if !(1..=256).contains(&description.chars().count()) {
            return Err("Bad Request: command description is empty or too long".into());
        }
    }
    emulator.world.lock().await.commands = Value::Array(commands.clone());
    Ok(json!(true))
}

async fn set_menu_button(emulator: &Emulator, params: &Params) -> Result<Value, String> {
    let button = params
        .get("menu_button")
        .cloned()
        .unwrap_or(json!({"type": "default"}));
    markup::check_menu_button(&button)?;
    emulator.world.lock().await.menu_button = button;
    Ok(json!(true))
}
