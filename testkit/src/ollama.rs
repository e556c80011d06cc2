//! An Ollama server double that speaks Ollama's documented HTTP API: `GET /api/version`,
//! `GET /api/tags`, `POST /api/embed` and `POST /api/chat` (one JSON object, or with
//! `"stream": true` newline-delimited JSON chunks ending in a `done` chunk with token counts).
//! Ollama itself cannot be installed on this machine; production talks to a real Ollama.
//!
//! What the "model" answers is up to the test: a `Brain` closure sees each chat request.
//! Embeddings are deterministic hashed bags of words, so similar texts get similar vectors.
//! Every request is recorded, and `fail_next` makes the server answer 500 (a crashed runner).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A chat request as the double received it.
#[derive(Debug, Clone)]
pub struct ChatSeen {
    pub model: String,
    /// (role, content) in order.
    pub messages: Vec<(String, String)>,
    /// The `format` field: `"json"` or a JSON schema.
    pub format: Option<Value>,
    pub stream: bool,
}

impl ChatSeen {
    pub fn system(&self) -> &str {
        self.messages
            .iter()
            .find(|(role, _)| role == "system")
            .map_or("", |(_, content)| content.as_str())
    }

    pub fn user(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|(role, _)| role == "user")
            .map_or("", |(_, content)| content.as_str())
    }
}

pub type Brain = Arc<dyn Fn(&ChatSeen) -> String + Send + Sync>;

pub struct State {
    pub brain: Brain,
    pub chats: Vec<ChatSeen>,
    /// (model, inputs) per embed call.
    pub embeds: Vec<(String, Vec<String>)>,
    /// Calls to answer 500 before serving again, per endpoint (`chat`, `embed`).
    pub fail_next: std::collections::HashMap<&'static str, usize>,
    pub dims: usize,
    /// Characters per streamed chunk, and the pause between chunks (a model generating).
    pub chunk_chars: usize,
    pub chunk_delay: Duration,
    /// Model names `/api/tags` lists and requests may use.
    pub models: Vec<String>,
}

/// A running double; stops when dropped.
pub struct OllamaDouble {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OllamaDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OllamaDouble {
    /// Starts with a brain that answers "{}" and serves the named models.
    pub async fn start(models: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(State {
            brain: Arc::new(|_| "{}".to_owned()),
            chats: Vec::new(),
            embeds: Vec::new(),
            fail_next: std::collections::HashMap::new(),
            dims: 64,
            chunk_chars: 12,
            chunk_delay: Duration::ZERO,
            models: models.iter().map(|m| (*m).to_owned()).collect(),
        }));
        let router = axum::Router::new()
            .route("/", get(|| async { "Ollama is running" }))
            .route(
                "/api/version",
                get(|| async { Json(json!({"version": "0.9.0"})) }),
            )
            .route("/api/tags", get(tags))
            .route("/api/embed", post(embed))
            .route("/api/chat", post(chat))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Ollama double");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, state, task }
    }

    pub fn set_brain(&self, brain: impl Fn(&ChatSeen) -> String + Send + Sync + 'static) {
        self.lock().brain = Arc::new(brain);
    }

    pub fn set_streaming(&self, chunk_chars: usize, chunk_delay: Duration) {
        let mut state = self.lock();
        state.chunk_chars = chunk_chars.max(1);
        state.chunk_delay = chunk_delay;
    }

    /// Makes the next `n` calls of `endpoint` (`chat` or `embed`) fail as a crashed runner.
    pub fn fail_next(&self, endpoint: &'static str, n: usize) {
        self.lock().fail_next.insert(endpoint, n);
    }

    pub fn chats(&self) -> Vec<ChatSeen> {
        self.lock().chats.clone()
    }

    pub fn embeds(&self) -> Vec<(String, Vec<String>)> {
        self.lock().embeds.clone()
    }

    pub fn dims(&self) -> usize {
        self.lock().dims
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the Ollama double's state")
    }
}

/// The double's embedding: words hashed (FNV-1a) into `dims` buckets, L2-normalised.
pub fn hashed_embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut vector = vec![0.0f32; dims.max(1)];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in word.to_lowercase().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let index = usize::try_from(hash % vector.len() as u64).unwrap_or(0);
        vector[index] += 1.0;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut vector {
            *x /= norm;
        }
    }
    vector
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

type Shared = AxumState<Arc<Mutex<State>>>;

fn take_failure(state: &Arc<Mutex<State>>, endpoint: &'static str) -> bool {
    let mut state = state.lock().expect("state");
    match state.fail_next.get_mut(endpoint) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

async fn tags(AxumState(state): Shared) -> Response {
    let models: Vec<Value> = state
        .lock()
        .expect("state")
        .models
        .iter()
        .map(|name| json!({"name": name, "model": name, "size": 0, "digest": "0", "modified_at": "2026-01-01T00:00:00Z"}))
        .collect();
    Json(json!({ "models": models })).into_response()
}

fn known(state: &State, model: &str) -> bool {
    state.models.iter().any(|m| m == model)
}

async fn embed(AxumState(state): Shared, Json(body): Json<Value>) -> Response {
    if take_failure(&state, "embed") {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "llama runner process has terminated",
        );
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => return error(StatusCode::BAD_REQUEST, "invalid input type"),
    };
    let mut guard = state.lock().expect("state");
    if !known(&guard, &model) {
        return error(
            StatusCode::NOT_FOUND,
            &format!("model \"{model}\" not found, try pulling it first"),
        );
    }
    let dims = guard.dims;
    guard.embeds.push((model.clone(), inputs.clone()));
    drop(guard);
    let embeddings: Vec<Vec<f32>> = inputs.iter().map(|t| hashed_embedding(t, dims)).collect();
    Json(json!({
        "model": model,
        "embeddings": embeddings,
        "total_duration": 1000,
        "load_duration": 100,
        "prompt_eval_count": inputs.iter().map(|t| t.split_whitespace().count()).sum::<usize>(),
    }))
    .into_response()
}

fn final_chunk(model: &str, prompt_tokens: usize, eval_tokens: usize) -> Value {
    json!({
        "model": model,
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": ""},
        "done": true,
        "done_reason": "stop",
        "total_duration": 1_000_000,
        "load_duration": 1000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 1000,
        "eval_count": eval_tokens,
        "eval_duration": 1000,
    })
}

async fn chat(AxumState(state): Shared, Json(body): Json<Value>) -> Response {
    if take_failure(&state, "chat") {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "llama runner process has terminated",
        );
    }
    let seen = ChatSeen {
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        messages: body["messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| {
                        (
                            m["role"].as_str().unwrap_or_default().to_owned(),
                            m["content"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        format: body.get("format").cloned(),
        // Ollama streams unless told otherwise.
        stream: body["stream"].as_bool().unwrap_or(true),
    };
    let (brain, chunk_chars, chunk_delay) = {
        let mut guard = state.lock().expect("state");
        if !known(&guard, &seen.model) {
            return error(
                StatusCode::NOT_FOUND,
                &format!("model \"{}\" not found, try pulling it first", seen.model),
            );
        }
        guard.chats.push(seen.clone());
        (guard.brain.clone(), guard.chunk_chars, guard.chunk_delay)
    };
    let answer = brain(&seen);
    let prompt_tokens: usize = seen
        .messages
        .iter()
        .map(|(_, c)| c.split_whitespace().count())
        .sum();
    let eval_tokens = answer.split_whitespace().count();
    if !seen.stream {
        let mut done = final_chunk(&seen.model, prompt_tokens, eval_tokens);
        done["message"]["content"] = Value::String(answer);
        return Json(done).into_response();
    }
    let chars: Vec<char> = answer.chars().collect();
    let pieces: Vec<String> = chars
        .chunks(chunk_chars)
        .map(|c| c.iter().collect())
        .collect();
    let model = seen.model.clone();
    let stream = futures::stream::unfold(
        (pieces.into_iter(), false),
        move |(mut pieces, finished)| {
            let model = model.clone();
            async move {
                if finished {
                    return None;
                }
                match pieces.next() {
                    Some(piece) => {
                        if !chunk_delay.is_zero() {
                            // Emulated generation time between tokens, not synchronisation.
                            tokio::time::sleep(chunk_delay).await;
                        }
                        let line = json!({
                            "model": model,
                            "created_at": "2026-01-01T00:00:00Z",
                            "message": {"role": "assistant", "content": piece},
                            "done": false,
                        });
                        Some((
                            Ok::<_, std::io::Error>(format!("{line}\n")),
                            (pieces, false),
                        ))
                    }
                    None => {
                        let line = final_chunk(&model, prompt_tokens, eval_tokens);
                        Some((Ok(format!("{line}\n")), (pieces, true)))
                    }
                }
            }
        },
    );
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}
