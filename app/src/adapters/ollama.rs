//! The Ollama adapter (ollama-rs): JSON-constrained chat for classification and extraction,
//! streamed chat for answers, and embeddings. Calls are bounded by a timeout (connect 5 s;
//! then `timeout_secs` for a whole reply, or between two streamed chunks) and retried with a
//! growing pause when the server is unreachable or answers 5xx. A 4xx (an unknown model, say)
//! is not retried. Metrics: calls by kind and result, latency, tokens in and out.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use ollama_rs::Ollama;
use ollama_rs::error::OllamaError;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage, ChatMessageResponse};
use ollama_rs::generation::embeddings::request::{EmbeddingsInput, GenerateEmbeddingsRequest};
use ollama_rs::generation::parameters::{FormatType, JsonStructure};
use ollama_rs::models::ModelOptions;
use schemars::Schema;

use crate::config::OllamaSettings;
use crate::documents::embed::Embedder;

/// A configured Ollama server.
#[derive(Clone)]
pub struct OllamaClient {
    client: Ollama,
    pub chat_model: String,
    timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for OllamaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OllamaClient")
            .field("url", &self.client.url_str())
            .field("chat_model", &self.chat_model)
            .finish_non_exhaustive()
    }
}

/// Streamed answer text, piece by piece.
pub type TextStream = Pin<Box<dyn Stream<Item = anyhow::Result<String>> + Send>>;

fn record(kind: &'static str, result: &'static str, started: Instant) {
    metrics::counter!("dossier_llm_requests_total", "kind" => kind, "result" => result)
        .increment(1);
    metrics::histogram!("dossier_llm_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}

fn record_tokens(kind: &'static str, response: &ChatMessageResponse) {
    if let Some(data) = &response.final_data {
        metrics::counter!("dossier_llm_tokens_total", "kind" => kind, "direction" => "in")
            .increment(data.prompt_eval_count);
        metrics::counter!("dossier_llm_tokens_total", "kind" => kind, "direction" => "out")
            .increment(data.eval_count);
    }
}

/// Worth another try: the server did not answer, or answered 5xx.
fn retryable(error: &OllamaError) -> bool {
    match error {
        OllamaError::ReqwestError(error) => error.status().is_none_or(|s| s.is_server_error()),
        // ollama-rs reports a non-2xx reply as `Other(body)`/`InternalError`: only a runner
        // crash (5xx) is worth retrying, and its body names it.
        OllamaError::InternalError(error) => !error.message.contains("not found"),
        OllamaError::Other(body) => !body.contains("not found"),
        _ => false,
    }
}

impl OllamaClient {
    pub fn new(url: &str, settings: &OllamaSettings) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(settings.timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(timeout)
            .build()
            .context("failed to build the Ollama HTTP client")?;
        let url = url::Url::parse(url).with_context(|| format!("invalid Ollama URL {url:?}"))?;
        let client = Ollama::builder().url(url).reqwest_client(http).build();
        Ok(Self {
            client,
            chat_model: settings.chat_model.clone(),
            timeout,
            retries: settings.retries,
        })
    }

    async fn with_retries<T, F, Fut>(&self, kind: &'static str, call: F) -> anyhow::Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, OllamaError>>,
    {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = tokio::time::timeout(self.timeout, call()).await;
            match result {
                Ok(Ok(value)) => {
                    record(kind, "ok", started);
                    return Ok(value);
                }
                Ok(Err(error)) if attempt < self.retries && retryable(&error) => {
                    record(kind, "retry", started);
                    tracing::warn!(kind, attempt, error = %error, "an Ollama call failed; retrying");
                }
                Ok(Err(error)) => {
                    record(kind, "error", started);
                    return Err(anyhow::Error::new(error).context(format!("Ollama {kind} failed")));
                }
                Err(_) if attempt < self.retries => {
                    record(kind, "retry", started);
                    tracing::warn!(kind, attempt, "an Ollama call timed out; retrying");
                }
                Err(_) => {
                    record(kind, "timeout", started);
                    anyhow::bail!("Ollama {kind} timed out after {:?}", self.timeout);
                }
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(250 << attempt.min(5))).await;
        }
    }

    /// One chat turn whose reply must be JSON matching `schema`; returns the parsed reply.
    pub async fn chat_json(
        &self,
        kind: &'static str,
        system: &str,
        user: &str,
        schema: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let schema = Schema::try_from(schema)
            .map_err(|e| anyhow::anyhow!("invalid JSON schema for Ollama: {e}"))?;
        let request = ChatMessageRequest::new(
            self.chat_model.clone(),
            vec![
                ChatMessage::system(system.to_owned()),
                ChatMessage::user(user.to_owned()),
            ],
        )
        .format(FormatType::StructuredJson(Box::new(
            JsonStructure::new_for_schema(schema),
        )))
        .options(ModelOptions::default().temperature(0.0));
        let response = self
            .with_retries(kind, || self.client.send_chat_messages(request.clone()))
            .await?;
        record_tokens(kind, &response);
        serde_json::from_str(response.message.content.trim())
            .with_context(|| format!("Ollama's {kind} reply is not the JSON asked for"))
    }

    /// A streamed answer to `user` under `system`. The first chunk is awaited (with retries)
    /// before this returns, so a dead server fails here rather than mid-stream.
    pub async fn chat_stream(&self, system: &str, user: &str) -> anyhow::Result<TextStream> {
        let request = ChatMessageRequest::new(
            self.chat_model.clone(),
            vec![
                ChatMessage::system(system.to_owned()),
                ChatMessage::user(user.to_owned()),
            ],
        )
        .options(ModelOptions::default().temperature(0.2));
        let started = Instant::now();
        let stream = self
            .with_retries("answer", || {
                self.client.send_chat_messages_stream(request.clone())
            })
            .await?;
        let timeout = self.timeout;
        let pieces = futures::stream::unfold(Some(stream), move |state| async move {
            let mut stream = state?;
            match tokio::time::timeout(timeout, stream.next()).await {
                Err(_) => Some((
                    Err(anyhow::anyhow!("Ollama stopped answering for {timeout:?}")),
                    None,
                )),
                Ok(None) => None,
                Ok(Some(Err(()))) => Some((
                    Err(anyhow::anyhow!("Ollama's answer stream broke off")),
                    None,
                )),
                Ok(Some(Ok(response))) => {
                    if response.done {
                        record_tokens("answer", &response);
                        metrics::histogram!("dossier_llm_stream_seconds")
                            .record(started.elapsed().as_secs_f64());
                    }
                    Some((Ok(response.message.content), Some(stream)))
                }
            }
        })
        .filter(|piece| futures::future::ready(!matches!(piece, Ok(text) if text.is_empty())));
        Ok(Box::pin(pieces))
    }

    /// Embeddings of `texts` by `model`.
    pub async fn embed(&self, model: &str, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let response = self
            .with_retries("embed", || {
                self.client
                    .generate_embeddings(GenerateEmbeddingsRequest::new(
                        model.to_owned(),
                        EmbeddingsInput::Multiple(texts.to_vec()),
                    ))
            })
            .await?;
        metrics::counter!("dossier_embedding_texts_total", "model" => "ollama")
            .increment(texts.len() as u64);
        anyhow::ensure!(
            response.embeddings.len() == texts.len(),
            "Ollama returned {} embeddings for {} texts",
            response.embeddings.len(),
            texts.len()
        );
        Ok(response.embeddings)
    }
}

/// Embeddings by an Ollama model, normalised to unit length (cosine = dot product, as for the
/// local model).
pub struct OllamaEmbedder {
    client: Arc<OllamaClient>,
    model: String,
    id: String,
    dims: AtomicUsize,
}

impl OllamaEmbedder {
    pub fn new(client: Arc<OllamaClient>, model: String) -> Self {
        Self {
            id: format!("ollama/{model}"),
            client,
            model,
            dims: AtomicUsize::new(0),
        }
    }
}

impl Embedder for OllamaEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    /// Known after the first call (0 before).
    fn dims(&self) -> usize {
        self.dims.load(Ordering::Relaxed)
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut vectors = self.client.embed(&self.model, texts).await?;
            for vector in &mut vectors {
                let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
                anyhow::ensure!(norm > 0.0, "Ollama returned a zero vector");
                for x in vector.iter_mut() {
                    *x /= norm;
                }
            }
            if let Some(first) = vectors.first() {
                self.dims.store(first.len(), Ordering::Relaxed);
            }
            metrics::histogram!("dossier_embedding_seconds", "model" => "ollama")
                .record(started.elapsed().as_secs_f64());
            Ok(vectors)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::ollama::OllamaDouble;

    fn settings() -> OllamaSettings {
        OllamaSettings {
            chat_model: "llama3.1:8b".into(),
            embed_model: Some("nomic-embed-text".into()),
            timeout_secs: 5,
            retries: 2,
        }
    }

    #[tokio::test]
    async fn json_chat_streaming_and_embeddings_speak_ollamas_api() {
        let double = OllamaDouble::start(&["llama3.1:8b", "nomic-embed-text"]).await;
        double.set_brain(|seen| {
            if seen.format.is_some() {
                r#"{"type": "invoice", "confidence": 0.9}"#.to_owned()
            } else {
                format!("You asked: {}", seen.user())
            }
        });
        double.set_streaming(4, std::time::Duration::ZERO);
        let client = Arc::new(OllamaClient::new(&double.url, &settings()).expect("client"));

        let reply = client
            .chat_json(
                "classify",
                "system",
                "user",
                serde_json::json!({"type": "object"}),
            )
            .await
            .expect("json chat");
        assert_eq!(reply["type"], "invoice");
        let seen = double.chats();
        assert_eq!(seen[0].system(), "system");
        assert_eq!(seen[0].format, Some(serde_json::json!({"type": "object"})));
        assert!(!seen[0].stream);

        let pieces: Vec<String> = client
            .chat_stream("system", "hello there")
            .await
            .expect("stream")
            .map(|p| p.expect("piece"))
            .collect()
            .await;
        assert!(pieces.len() > 2, "{pieces:?}");
        assert_eq!(pieces.concat(), "You asked: hello there");

        // A crashed runner is retried; embeddings come back unit length.
        double.fail_next("embed", 1);
        let embedder = OllamaEmbedder::new(client.clone(), "nomic-embed-text".into());
        let vectors = embedder
            .embed(&["passport number".to_owned(), "invoice total".to_owned()])
            .await
            .expect("embed");
        assert_eq!(vectors.len(), 2);
        assert_eq!(embedder.dims(), double.dims());
        let norm = vectors[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(embedder.model_id(), "ollama/nomic-embed-text");

        // An unknown model is not retried, and says what is wrong.
        let other = OllamaClient::new(
            &double.url,
            &OllamaSettings {
                chat_model: "missing:1b".into(),
                ..settings()
            },
        )
        .expect("client");
        let calls = double.chats().len();
        let error = other
            .chat_json("classify", "s", "u", serde_json::json!({"type": "object"}))
            .await
            .expect_err("unknown model");
        assert!(format!("{error:#}").contains("not found"), "{error:#}");
        assert_eq!(double.chats().len(), calls);

        // Too many failures: an error, after the configured retries.
        double.fail_next("chat", 10);
        assert!(client.chat_stream("s", "u").await.is_err());
    }
}
