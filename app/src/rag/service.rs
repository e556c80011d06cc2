//! `rag/ask`: limits, the answer cache, retrieval and the answer.
//!
//! The cache (NATS KV `{env}-answers`, a day) is keyed by a hash of the person, their index
//! version, the answer mode and the normalised question: a new or deleted document changes the
//! version, so a cached answer never outlives the documents it came from, and one person's key
//! can never name another's answer.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::answer::{self, SYSTEM_PROMPT};
use super::retrieve::{self, Retrieved};
use super::{Answer, MAX_QUESTION_CHARS, Passage};
use crate::auth::ratelimit::{self, Limit};
use crate::error::ApiError;
use crate::state::{AppState, internal};

/// Questions per person per minute.
pub const QUESTIONS_PER_USER: Limit = Limit {
    max_hits: 30,
    window: Duration::from_secs(60),
};
const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Lower case, single spaces, no trailing punctuation.
pub fn normalise(question: &str) -> String {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    words
        .join(" ")
        .trim_end_matches(['?', '!', '.', '¿', '？'])
        .trim()
        .to_owned()
}

fn cache_key(user_id: Uuid, version: &str, mode: &str, question: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [user_id.to_string().as_str(), version, mode, question] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    // The person's id leads the key, so deleting an account can purge its answers at once.
    format!("{user_id}.{}", hex::encode(hasher.finalize()))
}

/// Drops every cached answer of `user_id` (their account is being deleted).
pub async fn forget_answers(state: &AppState, user_id: Uuid) -> anyhow::Result<()> {
    let bucket = state.subjects.answers_bucket();
    // Made if missing, so its stream exists below.
    crate::telegram::link::service::bucket(state, bucket.clone(), CACHE_TTL)
        .await
        .map_err(|error| anyhow::anyhow!("the answer cache is unavailable: {error}"))?;
    let stream = state
        .jetstream
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(|error| anyhow::anyhow!("the answer cache is unavailable: {error}"))?;
    stream
        .purge()
        .filter(format!("$KV.{bucket}.{user_id}.>"))
        .await
        .map_err(|error| anyhow::anyhow!("failed to purge cached answers: {error}"))?;
    Ok(())
}

fn valid_stream_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn cache(state: &AppState) -> Option<async_nats::jetstream::kv::Store> {
    crate::telegram::link::service::bucket(state, state.subjects.answers_bucket(), CACHE_TTL)
        .await
        .ok()
}

async fn cached(state: &AppState, key: &str) -> Option<Answer> {
    let store = cache(state).await?;
    let bytes = store.get(key).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

async fn remember(state: &AppState, key: &str, answer: &Answer) {
    let Some(store) = cache(state).await else {
        return;
    };
    if let Ok(bytes) = serde_json::to_vec(answer)
        && let Err(error) = store.put(key, bytes.into()).await
    {
        tracing::warn!(%error, "an answer could not be cached");
    }
}

/// Writes a generated answer with Ollama, publishing its growth on the stream subject.
async fn generate(
    state: &AppState,
    ollama: &crate::adapters::ollama::OllamaClient,
    question: &str,
    retrieved: &[Retrieved],
    of_chunk: &[u32],
    stream: Option<&str>,
) -> anyhow::Result<String> {
    let prompt = answer::prompt(question, retrieved, of_chunk);
    let mut pieces = ollama.chat_stream(SYSTEM_PROMPT, &prompt).await?;
    let subject = stream.map(|id| state.subjects.answer_stream(id));
    let mut text = String::new();
    while let Some(piece) = pieces.next().await {
        text.push_str(&piece?);
        if let Some(subject) = &subject
            && !answer::NOT_FOUND.starts_with(text.trim())
        {
            let update = serde_json::json!({ "text": text, "done": false });
            let _ = state
                .nats
                .publish(subject.clone(), update.to_string().into())
                .await;
        }
    }
    if let Some(subject) = subject {
        let _ = state
            .nats
            .publish(
                subject,
                serde_json::json!({ "done": true }).to_string().into(),
            )
            .await;
    }
    Ok(text.trim().to_owned())
}

/// The numbers `[n]` cited in a generated answer.
fn cited(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find(']') {
            for part in rest[..close].split(',') {
                if let Ok(n) = part.trim().parse::<u32>()
                    && !out.contains(&n)
                {
                    out.push(n);
                }
            }
        }
    }
    out
}

pub async fn ask(
    state: &AppState,
    user_id: Uuid,
    question: &str,
    stream: Option<&str>,
) -> Result<Answer, ApiError> {
    let question = question.trim();
    if question.is_empty() {
        return Err(ApiError::field("question", "Type a question."));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::field(
            "question",
            format!("A question can have at most {MAX_QUESTION_CHARS} characters."),
        ));
    }
    if stream.is_some_and(|id| !valid_stream_id(id)) {
        return Err(ApiError::field("stream", "Invalid stream id."));
    }
    ratelimit::hit(
        &state.db,
        &format!("ask:user:{user_id}"),
        QUESTIONS_PER_USER,
    )
    .await?;
    let started = std::time::Instant::now();
    let version = retrieve::index_version(&state.db, user_id)
        .await
        .map_err(internal)?;
    let mode = if state.ollama.is_some() {
        "ollama"
    } else {
        "extractive"
    };
    let key = cache_key(user_id, &version, mode, &normalise(question));
    if let Some(mut answer) = cached(state, &key).await {
        metrics::counter!("dossier_rag_questions_total", "result" => "cached").increment(1);
        answer.cached = true;
        return Ok(answer);
    }
    let embedder = state.models.embedder().await.map_err(|error| {
        tracing::warn!(error = ?error, "the embedding model is unavailable");
        ApiError::Unavailable
    })?;
    let query = embedder
        .embed(&[question.to_owned()])
        .await
        .map_err(|error| {
            tracing::warn!(error = ?error, "the question could not be embedded");
            ApiError::Unavailable
        })?
        .into_iter()
        .next()
        .context("the model returned no vector")
        .map_err(internal)?;
    let retrieved: Vec<Retrieved> =
        retrieve::retrieve(state, user_id, question, &query, embedder.model_id())
            .await
            .map_err(|error| {
                tracing::warn!(error = ?error, "retrieval failed");
                ApiError::Unavailable
            })?
            .into_iter()
            .filter(Retrieved::relevant)
            .collect();
    let (mut sources, of_chunk) = answer::sources(&retrieved);
    let mut passages: Vec<Passage> = answer::extractive(question, &retrieved, &of_chunk);
    let mut generated = None;
    if let Some(ollama) = &state.ollama
        && !retrieved.is_empty()
    {
        match generate(state, ollama, question, &retrieved, &of_chunk, stream).await {
            Ok(text) if answer::says_not_found(&text) => {
                passages.clear();
            }
            Ok(text) => generated = Some(text),
            Err(error) => {
                // The quoted passages still answer; the LLM's failure is only logged.
                tracing::warn!(error = ?error, "Ollama could not answer; answering with passages");
            }
        }
    }
    // Only the sources the answer rests on: a generated answer's citations (and the passages
    // of those sources as its evidence), or the quoted passages' sources.
    let used: Vec<u32> = match &generated {
        Some(text) => {
            let cites: Vec<u32> = cited(text)
                .into_iter()
                .filter(|n| sources.iter().any(|s| s.n == *n))
                .collect();
            if cites.is_empty() {
                sources.iter().map(|s| s.n).collect()
            } else {
                passages.retain(|p| cites.contains(&p.source));
                cites
            }
        }
        None => passages.iter().map(|p| p.source).collect(),
    };
    sources.retain(|s| used.contains(&s.n));
    let found = generated.is_some() || !passages.is_empty();
    if !found {
        sources.clear();
    }
    let answer = Answer {
        found,
        generated,
        passages,
        sources,
        cached: false,
    };
    metrics::counter!("dossier_rag_questions_total", "result" => if found { "answered" } else { "not_found" })
        .increment(1);
    metrics::histogram!("dossier_rag_ask_seconds", "mode" => mode)
        .record(started.elapsed().as_secs_f64());
    remember(state, &key, &answer).await;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_normalised_and_citations_read() {
        assert_eq!(
            normalise("  What is my   PASSPORT number?? "),
            "what is my passport number"
        );
        assert_eq!(cited("It is 72 [1], due [2, 3] and [x]."), vec![1, 2, 3]);
        assert!(valid_stream_id("abcdefghijklmnop"));
        assert!(!valid_stream_id("abc.def.ghi.jkl.mno"));
        assert!(!valid_stream_id("short"));
        let a = cache_key(Uuid::nil(), "1", "extractive", "q");
        let b = cache_key(Uuid::from_u128(1), "1", "extractive", "q");
        assert_ne!(a, b);
    }
}
