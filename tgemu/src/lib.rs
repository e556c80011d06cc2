//! A Telegram Bot API emulator: the real wire format (`/bot<token>/<method>`, `{ok, result}`
//! and `{ok: false, error_code, description}`), for tests and for running the bot without a
//! token. Method names are matched case-insensitively, as Telegram does.
//!
//! The control API (`/control/...`) plays the users: it injects updates and reads back what
//! the bot sent.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, Notify};

/// The bot the emulator pretends to host.
#[derive(Debug, Clone)]
pub struct BotIdentity {
    pub token: String,
    pub id: i64,
    pub username: String,
    pub first_name: String,
}

impl Default for BotIdentity {
    fn default() -> Self {
        Self {
            token: "123456:emulator-token".into(),
            id: 123_456,
            username: "dossier_dev_bot".into(),
            first_name: "Dossier".into(),
        }
    }
}

/// Longest long-poll a client may ask for (Telegram caps `timeout` similarly).
const MAX_POLL: Duration = Duration::from_secs(50);
const MAX_TEXT_CHARS: usize = 4096;

#[derive(Default)]
struct World {
    next_update_id: i64,
    next_message_id: i64,
    /// Updates not yet confirmed by an offset.
    pending: VecDeque<Value>,
    /// Everything the bot sent, by chat.
    sent: BTreeMap<i64, Vec<Value>>,
    commands: Value,
    now: i64,
}

#[derive(Clone)]
struct Emulator {
    bot: Arc<BotIdentity>,
    world: Arc<Mutex<World>>,
    arrived: Arc<Notify>,
}

/// The emulator's HTTP surface: the Bot API and the control API.
pub fn router(bot: BotIdentity) -> Router {
    let emulator = Emulator {
        bot: Arc::new(bot),
        world: Arc::new(Mutex::new(World {
            next_update_id: 1,
            next_message_id: 1,
            commands: json!([]),
            ..World::default()
        })),
        arrived: Arc::new(Notify::new()),
    };
    Router::new()
        .route("/{bot_token}/{method}", post(bot_method).get(bot_method))
        .route("/control/users/{user_id}/messages", post(user_sends_text))
        .route("/control/chats/{chat_id}/sent", get(sent_to_chat))
        .route("/control/commands", get(registered_commands))
        .with_state(emulator)
}

async fn bot_method(
    State(emulator): State<Emulator>,
    Path((bot_token, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot_token.strip_prefix("bot") else {
        return api_error(StatusCode::NOT_FOUND, "Not Found");
    };
    // Telegram answers an unknown token with 401 before looking at the method.
    if token != emulator.bot.token {
        return api_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let params = match parse_params(&headers, &body) {
        Ok(params) => params,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, &message),
    };
    match method.to_ascii_lowercase().as_str() {
        "getme" => ok(json!({
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
        })),
        "deletewebhook" | "setchatmenubutton" => ok(json!(true)),
        "getwebhookinfo" => {
            let pending = emulator.world.lock().await.pending.len();
            ok(
                json!({ "url": "", "has_custom_certificate": false, "pending_update_count": pending }),
            )
        }
        "setmycommands" => {
            emulator.world.lock().await.commands =
                params.get("commands").cloned().unwrap_or(json!([]));
            ok(json!(true))
        }
        "getupdates" => get_updates(&emulator, &params).await,
        "sendmessage" => send_message(&emulator, &params).await,
        _ => api_error(StatusCode::NOT_FOUND, "Not Found: method not found"),
    }
}

/// Bot API parameters arrive as JSON, a form, or a query string; all become one JSON object.
fn parse_params(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        return match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err("Bad Request: invalid JSON body".into()),
        };
    }
    Err(format!(
        "Bad Request: unsupported content type {content_type:?}"
    ))
}

async fn get_updates(emulator: &Emulator, params: &Map<String, Value>) -> Response {
    let offset = params.get("offset").and_then(Value::as_i64).unwrap_or(0);
    let limit = params
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 100) as usize;
    let timeout = Duration::from_secs(params.get("timeout").and_then(Value::as_u64).unwrap_or(0))
        .min(MAX_POLL);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Register interest before looking, so an update arriving in between wakes us.
        let notified = emulator.arrived.notified();
        {
            let mut world = emulator.world.lock().await;
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

async fn send_message(emulator: &Emulator, params: &Map<String, Value>) -> Response {
    let Some(chat_id) = params.get("chat_id").and_then(chat_id_of) else {
        return api_error(StatusCode::BAD_REQUEST, "Bad Request: chat_id is empty");
    };
    let text = params.get("text").and_then(Value::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Bad Request: message text is empty",
        );
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return api_error(StatusCode::BAD_REQUEST, "Bad Request: message is too long");
    }
    let mut world = emulator.world.lock().await;
    let message_id = world.next_message_id;
    world.next_message_id += 1;
    world.now += 1;
    let mut message = json!({
        "message_id": message_id,
        "date": world.now,
        "chat": { "id": chat_id, "type": "private" },
        "from": { "id": emulator.bot.id, "is_bot": true, "first_name": emulator.bot.first_name, "username": emulator.bot.username },
        "text": text,
    });
    if let Some(markup) = params.get("reply_markup") {
        message["reply_markup"] = markup.clone();
    }
    world.sent.entry(chat_id).or_default().push(message.clone());
    ok(message)
}

fn chat_id_of(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

#[derive(Deserialize)]
struct UserText {
    text: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    language_code: Option<String>,
}

/// A simulated user (in a private chat whose id equals the user id) sends a text message.
async fn user_sends_text(
    State(emulator): State<Emulator>,
    Path(user_id): Path<i64>,
    Json(input): Json<UserText>,
) -> Response {
    let mut world = emulator.world.lock().await;
    let update_id = world.next_update_id;
    world.next_update_id += 1;
    let message_id = world.next_message_id;
    world.next_message_id += 1;
    world.now += 1;
    let from = json!({
        "id": user_id,
        "is_bot": false,
        "first_name": input.first_name.unwrap_or_else(|| format!("User {user_id}")),
        "username": input.username,
        "language_code": input.language_code.unwrap_or_else(|| "en".into()),
    });
    let mut message = json!({
        "message_id": message_id,
        "date": world.now,
        "chat": { "id": user_id, "type": "private", "first_name": from["first_name"] },
        "from": from,
        "text": input.text,
    });
    if input.text.starts_with('/') {
        let len = input
            .text
            .split_whitespace()
            .next()
            .map_or(0, |c| c.encode_utf16().count());
        message["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": len }]);
    }
    let update = json!({ "update_id": update_id, "message": message });
    world.pending.push_back(update.clone());
    drop(world);
    emulator.arrived.notify_waiters();
    (StatusCode::CREATED, Json(update)).into_response()
}

async fn sent_to_chat(State(emulator): State<Emulator>, Path(chat_id): Path<i64>) -> Response {
    let world = emulator.world.lock().await;
    Json(world.sent.get(&chat_id).cloned().unwrap_or_default()).into_response()
}

async fn registered_commands(State(emulator): State<Emulator>) -> Response {
    Json(emulator.world.lock().await.commands.clone()).into_response()
}

fn ok(result: Value) -> Response {
    Json(json!({ "ok": true, "result": result })).into_response()
}

fn api_error(status: StatusCode, description: &str) -> Response {
    (
        status,
        Json(json!({
            "ok": false,
            "error_code": status.as_u16(),
            "description": description,
        })),
    )
        .into_response()
}
