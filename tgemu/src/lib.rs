//! A Telegram Bot API emulator: the real wire format (`/bot<token>/<method>` with JSON, form or
//! multipart parameters; `{ok, result}` and `{ok: false, error_code, description,
//! parameters.retry_after}`), for tests and for running the bot without a token. Method names
//! are matched case-insensitively, as Telegram does. Telegram's limits are enforced: 429 with
//! `retry_after` above the per-chat and overall send rates, 20 MB downloads, 50 MB uploads,
//! 4096-character messages, 64-byte callback data.
//!
//! The control API (`/control/...`) plays the users: it injects messages, files and button
//! presses and reads back what the bot did. `GET /` is a small chat page for trying a bot by hand.

mod control;
mod limits;
mod markup;
mod methods;
mod params;
mod webhook;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};

pub use limits::Limits;

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

/// Everything configurable about an emulator.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub bot: BotIdentity,
    pub limits: Limits,
}

/// Longest long-poll a client may ask for (Telegram caps `timeout` similarly).
const MAX_POLL: Duration = Duration::from_secs(50);
pub const MAX_TEXT_CHARS: usize = 4096;
pub const MAX_CAPTION_CHARS: usize = 1024;
/// What a bot may download through the public Bot API.
pub const MAX_DOWNLOAD_BYTES: usize = 20 * 1024 * 1024;
/// What a bot may upload through the public Bot API.
pub const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;

#[derive(Debug, Clone)]
struct StoredFile {
    unique_id: String,
    path: String,
    bytes: axum::body::Bytes,
    file_name: Option<String>,
    mime_type: Option<String>,
}

#[derive(Debug, Clone)]
struct Webhook {
    url: String,
    secret_token: Option<String>,
    last_error: Option<(i64, String)>,
}

#[derive(Default)]
struct World {
    next_update_id: i64,
    next_message_id: i64,
    next_file: u64,
    /// Updates not yet confirmed (by an offset, or by a webhook's 2xx).
    pending: VecDeque<Value>,
    /// Update types the bot asked for (`allowed_updates`); empty means the default set.
    allowed_updates: Vec<String>,
    /// Every message in each chat, both directions, kept current (edits, deletions).
    history: BTreeMap<i64, Vec<Value>>,
    files: HashMap<String, StoredFile>,
    /// Callback queries sent to the bot and whether they were answered.
    callbacks: HashMap<String, bool>,
    callback_answers: Vec<Value>,
    actions: BTreeMap<i64, Vec<Value>>,
    /// Every successful text edit per chat, in order: `{message_id, text}`.
    edits: BTreeMap<i64, Vec<Value>>,
    commands: Value,
    menu_button: Value,
    webhook: Option<Webhook>,
    /// Incremented by each getUpdates; a waiting poll that sees a newer one ends with 409.
    poll_generation: u64,
    limiter: limits::Limiter,
    too_many_requests: u64,
    /// getUpdates calls ended with 409 because another poller came along.
    conflicts: u64,
}

impl World {
    fn new_message_id(&mut self) -> i64 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        id
    }

    fn push_update(&mut self, kind: &str, payload: Value) -> Option<Value> {
        let allowed = if self.allowed_updates.is_empty() {
            // Telegram's default excludes a few kinds; messages and button presses are in.
            true
        } else {
            self.allowed_updates.iter().any(|k| k == kind)
        };
        if !allowed {
            return None;
        }
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        let update = json!({ "update_id": update_id, kind: payload });
        self.pending.push_back(update.clone());
        Some(update)
    }

    fn store_file(&mut self, upload: &params::Upload, kind: &str) -> (String, StoredFile) {
        self.next_file += 1;
        let n = self.next_file;
        let extension = upload
            .file_name
            .as_deref()
            .and_then(|name| name.rsplit_once('.'))
            .map(|(_, ext)| {
                ext.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
            })
            .filter(|ext| !ext.is_empty())
            .map_or_else(String::new, |ext| format!(".{ext}"));
        let file = StoredFile {
            unique_id: format!("AgADemu{n}"),
            path: format!("{kind}/file_{n}{extension}"),
            bytes: upload.bytes.clone(),
            file_name: upload.file_name.clone(),
            mime_type: upload.content_type.clone(),
        };
        let file_id = format!("BQACAgIAAxk-emu-{n}-{}", file.unique_id);
        self.files.insert(file_id.clone(), file.clone());
        (file_id, file)
    }

    fn find_message(&mut self, chat_id: i64, message_id: i64) -> Option<&mut Value> {
        self.history
            .get_mut(&chat_id)?
            .iter_mut()
            .find(|m| m["message_id"] == message_id && m.get("deleted").is_none())
    }
}

#[derive(Clone)]
struct Emulator {
    bot: Arc<BotIdentity>,
    world: Arc<Mutex<World>>,
    /// Woken whenever an update is queued (long polls and the webhook deliverer wait on it).
    arrived: Arc<Notify>,
    http: reqwest::Client,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The emulator's HTTP surface: the Bot API, file downloads, the control API and the chat page.
/// Spawns the webhook deliverer on the current Tokio runtime.
pub fn router(config: Config) -> Router {
    let emulator = Emulator {
        bot: Arc::new(config.bot),
        world: Arc::new(Mutex::new(World {
            next_update_id: 1,
            next_message_id: 1,
            commands: json!([]),
            menu_button: json!({"type": "default"}),
            limiter: limits::Limiter::new(config.limits),
            ..World::default()
        })),
        arrived: Arc::new(Notify::new()),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default(),
    };
    tokio::spawn(webhook::deliver(emulator.clone()));
    Router::new()
        .route("/", get(control::page))
        .route(
            "/{bot_token}/{method}",
            post(methods::bot_method).get(methods::bot_method),
        )
        .route("/file/{bot_token}/{*path}", get(methods::download))
        .nest("/control", control::router())
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024 * 1024))
        .with_state(emulator)
}

fn ok(result: Value) -> Response {
    axum::Json(json!({ "ok": true, "result": result })).into_response()
}

fn api_error(status: StatusCode, description: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "ok": false,
            "error_code": status.as_u16(),
            "description": description,
        })),
    )
        .into_response()
}

fn bad_request(description: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, description)
}

fn too_many_requests(retry_after: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({
            "ok": false,
            "error_code": 429,
            "description": format!("Too Many Requests: retry after {retry_after}"),
            "parameters": { "retry_after": retry_after },
        })),
    )
        .into_response()
}
