//! Retrieval over one person's chunks: nearest vectors (in process over the embeddings stored
//! in PostgreSQL, or Qdrant with a `user_id` must-filter when configured) fused with
//! PostgreSQL full-text search by reciprocal rank, de-duplicated, top 5.
//!
//! The in-process index keeps each person's vectors in memory (loaded once, reloaded when
//! their index version changes: a document finished or was deleted), and scans them exactly:
//! every chunk is scored, so recall is exact. The scan (crate `vecscan`) is a plain loop over
//! contiguous f32s that the compiler vectorises, split over the machine's cores for large
//! archives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use futures::TryStreamExt;
use uuid::Uuid;

use crate::documents::embed::from_bytes;
use crate::state::AppState;

/// Sources an answer may cite.
pub const TOP_K: usize = 5;
/// Candidates taken from each retriever before fusion.
const CANDIDATES: usize = 20;
/// Chunks matching every word that are ranked, at most (a bound on the worst case).
const ALL_WORDS_SAMPLE: i64 = 1000;
/// Chunks matching any one word (prefixes allowed) that are ranked, at most.
const ANY_WORD_SAMPLE: i64 = 200;
/// Reciprocal-rank-fusion constant (Cormack et al.).
const RRF_K: f32 = 60.0;
/// Below this cosine, a vector hit alone is not evidence (all-MiniLM-L6-v2 scores unrelated
/// sentences around 0–0.2).
pub const MIN_SIMILARITY: f32 = 0.3;
/// Vectors kept in memory across people (f32s; 64 Mi = 256 MiB).
const CACHE_MAX_FLOATS: usize = 64 * 1024 * 1024;

/// One person's vectors, in one contiguous block.
pub struct UserVectors {
    pub version: String,
    pub model: String,
    pub dims: usize,
    pub keys: Vec<(Uuid, i32)>,
    pub data: Vec<f32>,
}

impl UserVectors {
    /// Exact nearest neighbours by dot product (vectors are unit length: cosine).
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(Uuid, i32, f32)> {
        vecscan::nearest(&self.data, self.dims, query, k)
            .into_iter()
            .map(|(row, score)| (self.keys[row].0, self.keys[row].1, score))
            .collect()
    }

    pub fn floats(&self) -> usize {
        self.data.len()
    }
}

/// People's vectors in memory, bounded; the least recently used are dropped first.
#[derive(Default)]
pub struct VectorCache {
    inner: Mutex<HashMap<Uuid, (Arc<UserVectors>, Instant)>>,
}

impl VectorCache {
    fn cached(&self, user_id: Uuid, model: &str, version: &str) -> Option<Arc<UserVectors>> {
        let mut inner = self.inner.lock().ok()?;
        let (vectors, used) = inner.get_mut(&user_id)?;
        if vectors.version == version && vectors.model == model {
            *used = Instant::now();
            return Some(vectors.clone());
        }
        None
    }

    fn keep(&self, user_id: Uuid, vectors: Arc<UserVectors>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.insert(user_id, (vectors, Instant::now()));
        let mut total: usize = inner.values().map(|(v, _)| v.floats()).sum();
        while total > CACHE_MAX_FLOATS && inner.len() > 1 {
            let Some(oldest) = inner
                .iter()
                .filter(|(id, _)| **id != user_id)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some((gone, _)) = inner.remove(&oldest) {
                total -= gone.floats();
            }
        }
    }

    /// Drops the person's vectors (their account is gone).
    pub fn forget(&self, user_id: Uuid) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.remove(&user_id);
        }
    }

    /// The person's vectors of `model` at `version`, loaded from PostgreSQL when not cached.
    pub async fn get(
        &self,
        db: &sqlx::PgPool,
        user_id: Uuid,
        model: &str,
        version: &str,
    ) -> anyhow::Result<Arc<UserVectors>> {
        if let Some(vectors) = self.cached(user_id, model, version) {
            metrics::counter!("dossier_rag_vector_cache_total", "result" => "hit").increment(1);
            return Ok(vectors);
        }
        metrics::counter!("dossier_rag_vector_cache_total", "result" => "load").increment(1);
        let mut rows = sqlx::query_as::<_, (Uuid, i32, Vec<u8>)>(
            "SELECT document_id, ordinal, embedding FROM chunks
              WHERE user_id = $1 AND model = $2 ORDER BY document_id, ordinal",
        )
        .bind(user_id)
        .bind(model)
        .fetch(db);
        let mut keys = Vec::new();
        let mut data = Vec::new();
        let mut dims = 0;
        while let Some((document_id, ordinal, bytes)) =
            rows.try_next().await.context("failed to load vectors")?
        {
            let vector = from_bytes(&bytes)?;
            if dims == 0 {
                dims = vector.len();
            }
            if vector.len() != dims {
                continue;
            }
            keys.push((document_id, ordinal));
            data.extend_from_slice(&vector);
        }
        let vectors = Arc::new(UserVectors {
            version: version.to_owned(),
            model: model.to_owned(),
            dims,
            keys,
            data,
        });
        self.keep(user_id, vectors.clone());
        Ok(vectors)
    }
}

/// Changes whenever the person's searchable chunks may have: a document finished or was
/// deleted.
pub async fn index_version(db: &sqlx::PgPool, user_id: Uuid) -> anyhow::Result<String> {
    let (count, latest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM max(updated_at))::float8
           FROM documents WHERE user_id = $1 AND stage = 'done'",
    )
    .bind(user_id)
    .fetch_one(db)
    .await
    .context("failed to read the index version")?;
    Ok(format!("{count}-{:.6}", latest.unwrap_or(0.0)))
}

/// Words that carry no meaning for search (English and Russian).
const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "and",
    "are",
    "as",
    "at",
    "be",
    "by",
    "can",
    "do",
    "does",
    "for",
    "from",
    "had",
    "has",
    "have",
    "how",
    "i",
    "in",
    "is",
    "it",
    "its",
    "me",
    "my",
    "of",
    "on",
    "or",
    "our",
    "please",
    "show",
    "tell",
    "that",
    "the",
    "their",
    "there",
    "this",
    "to",
    "was",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "why",
    "will",
    "with",
    "you",
    "your",
    "find",
    "give",
    "get",
    "much",
    "many",
    "и",
    "в",
    "во",
    "на",
    "с",
    "со",
    "по",
    "к",
    "у",
    "о",
    "об",
    "из",
    "за",
    "для",
    "от",
    "до",
    "не",
    "ли",
    "мой",
    "моя",
    "моё",
    "мое",
    "мои",
    "моего",
    "моей",
    "какой",
    "какая",
    "какое",
    "какие",
    "что",
    "где",
    "когда",
    "как",
    "сколько",
    "это",
    "мне",
    "меня",
    "я",
    "скажи",
    "покажи",
    "найди",
];

/// Other spellings of a word as documents write it.
fn synonyms(word: &str) -> &'static [&'static str] {
    match word {
        "number" | "numbers" | "номер" | "номера" => {
            &["no", "nr", "num", "number", "номер"]
        }
        "total" | "итого" | "сумма" => {
            &["total", "sum", "amount", "итого", "всего", "сумма"]
        }
        "iban" => &["iban"],
        "birthday" | "born" => &["birth", "born"],
        "expires" | "expiry" | "expire" => &["expiry", "expires", "valid", "until"],
        "due" => &["due", "payable"],
        _ => &[],
    }
}

/// The question's words without stop words, each with its synonyms (one group per word).
pub fn term_groups(question: &str) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut seen = 0;
    for word in question
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(&w.as_str()))
    {
        if groups.iter().flatten().any(|t| *t == word) {
            continue;
        }
        let mut group = vec![word.clone()];
        for synonym in synonyms(&word) {
            if !group.iter().any(|t| t == synonym) {
                group.push((*synonym).to_owned());
            }
        }
        seen += group.len();
        if seen > 24 {
            break;
        }
        groups.push(group);
    }
    groups
}

/// The question's search terms: words without stop words, plus their synonyms.
pub fn terms(question: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for term in term_groups(question).into_iter().flatten() {
        if !out.contains(&term) {
            out.push(term);
        }
    }
    out
}

fn ts_term(term: &str) -> String {
    if term.chars().count() >= 4 {
        format!("'{term}':*")
    } else {
        format!("'{term}'")
    }
}

/// Every word (or one of its synonyms), as whole words: `('passport') & ('number' | 'no')`.
/// (Prefixes here would make GIN intersect many posting lists: measured 5–10× slower.)
fn ts_query_all(groups: &[Vec<String>]) -> Option<String> {
    let parts: Vec<String> = groups
        .iter()
        .map(|group| {
            group
                .iter()
                .filter(|t| t.chars().all(char::is_alphanumeric))
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
        })
        .filter(|group| !group.is_empty())
        .map(|group| format!("({})", group.join(" | ")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" & "))
}

/// `'passport':* | 'no'`: any term, longer ones as prefixes. Terms are alphanumeric only.
fn ts_query(terms: &[String]) -> Option<String> {
    let parts: Vec<String> = terms
        .iter()
        .filter(|t| t.chars().all(char::is_alphanumeric))
        .map(|t| ts_term(t))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" | "))
}

/// A retrieved chunk with its evidence.
#[derive(Debug, Clone)]
pub struct Retrieved {
    pub document_id: Uuid,
    pub ordinal: i32,
    pub page: i32,
    pub text: String,
    pub file_name: String,
    /// Fused score.
    pub score: f32,
    /// Cosine to the question, when the vector search returned it.
    pub similarity: Option<f32>,
    /// Full-text rank, when the text search returned it.
    pub text_rank: Option<f32>,
}

impl Retrieved {
    /// Whether this chunk is evidence at all.
    pub fn relevant(&self) -> bool {
        self.text_rank.is_some() || self.similarity.is_some_and(|s| s >= MIN_SIMILARITY)
    }
}

async fn vector_hits(
    state: &AppState,
    user_id: Uuid,
    model: &str,
    query: &[f32],
) -> anyhow::Result<Vec<(Uuid, i32, f32)>> {
    if let Some(qdrant) = &state.qdrant {
        let hits = qdrant
            .search(user_id, query, CANDIDATES as u64)
            .await
            .context("vector search in Qdrant")?;
        return Ok(hits
            .into_iter()
            .map(|h| (h.document_id, h.ordinal, h.score))
            .collect());
    }
    let version = index_version(&state.db, user_id).await?;
    let vectors = state
        .vectors
        .get(&state.db, user_id, model, &version)
        .await?;
    let query = query.to_vec();
    tokio::task::spawn_blocking(move || vectors.nearest(&query, CANDIDATES))
        .await
        .context("the vector scan panicked")
}

/// Chunks matching every word are ranked (few, in real archives; at most 1,000); when they are fewer
/// than the candidates wanted, chunks matching any word fill up, ranked among a bounded sample
/// (a word common to most chunks must not make every question rank the whole archive).
async fn text_hits(
    db: &sqlx::PgPool,
    user_id: Uuid,
    question: &str,
) -> anyhow::Result<Vec<(Uuid, i32, f32)>> {
    let groups = term_groups(question);
    let Some(all) = ts_query_all(&groups) else {
        return Ok(Vec::new());
    };
    let mut hits = ranked_sample(db, user_id, &all, ALL_WORDS_SAMPLE).await?;
    if hits.len() < CANDIDATES && groups.len() > 1 {
        let any = ts_query(&groups.concat()).unwrap_or_default();
        for hit in ranked_sample(db, user_id, &any, ANY_WORD_SAMPLE).await? {
            if hits.len() == CANDIDATES {
                break;
            }
            if !hits.iter().any(|h| h.0 == hit.0 && h.1 == hit.1) {
                // Below every chunk that matched all the words.
                hits.push((hit.0, hit.1, hit.2 * 0.5));
            }
        }
    }
    Ok(hits)
}

/// The best-ranked `CANDIDATES` among at most `sample` of the person's chunks matching `query`.
async fn ranked_sample(
    db: &sqlx::PgPool,
    user_id: Uuid,
    query: &str,
    sample: i64,
) -> anyhow::Result<Vec<(Uuid, i32, f32)>> {
    sqlx::query_as(
        "SELECT document_id, ordinal, ts_rank_cd(tsv, q)::float4
           FROM (SELECT document_id, ordinal, tsv FROM chunks, to_tsquery('simple', $2) q
                  WHERE user_id = $1 AND tsv @@ q LIMIT $4) sample,
                to_tsquery('simple', $2) q
          ORDER BY 3 DESC, document_id, ordinal LIMIT $3",
    )
    .bind(user_id)
    .bind(query)
    .bind(CANDIDATES as i64)
    .bind(sample)
    // Planned for this query's words every time: a cached generic plan cannot know how
    // selective they are and walks all of the person's rows.
    .persistent(false)
    .fetch_all(db)
    .await
    .context("failed to search text")
}

/// (document, ordinal)
type ChunkKey = (Uuid, i32);
/// (fused score, cosine, text rank)
type Evidence = (f32, Option<f32>, Option<f32>);

/// The top chunks of `user_id`'s documents for a question, best first.
pub async fn retrieve(
    state: &AppState,
    user_id: Uuid,
    question: &str,
    query: &[f32],
    model: &str,
) -> anyhow::Result<Vec<Retrieved>> {
    let started = Instant::now();
    let (vectors, texts) = tokio::join!(
        vector_hits(state, user_id, model, query),
        text_hits(&state.db, user_id, question)
    );
    let (vectors, texts) = (vectors?, texts?);
    let mut fused: HashMap<ChunkKey, Evidence> = HashMap::new();
    for (rank, (document, ordinal, similarity)) in vectors.into_iter().enumerate() {
        let entry = fused.entry((document, ordinal)).or_default();
        entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        entry.1 = Some(similarity);
    }
    for (rank, (document, ordinal, text_rank)) in texts.into_iter().enumerate() {
        let entry = fused.entry((document, ordinal)).or_default();
        entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        entry.2 = Some(text_rank);
    }
    let mut ranked: Vec<(ChunkKey, Evidence)> = fused.into_iter().collect();
    ranked.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(TOP_K);
    if ranked.is_empty() {
        return Ok(Vec::new());
    }
    let documents: Vec<Uuid> = ranked.iter().map(|((d, _), _)| *d).collect();
    let ordinals: Vec<i32> = ranked.iter().map(|((_, o), _)| *o).collect();
    // The chunk rows, again filtered by the caller: a stale or foreign hit finds nothing.
    let rows: Vec<(Uuid, i32, i32, String, String)> = sqlx::query_as(
        "SELECT c.document_id, c.ordinal, c.page, c.text, d.file_name
           FROM unnest($2::uuid[], $3::int[]) AS want(document_id, ordinal)
           JOIN chunks c ON c.document_id = want.document_id AND c.ordinal = want.ordinal
           JOIN documents d ON d.id = c.document_id
          WHERE c.user_id = $1 AND d.user_id = $1",
    )
    .bind(user_id)
    .bind(&documents)
    .bind(&ordinals)
    .fetch_all(&state.db)
    .await
    .context("failed to read retrieved chunks")?;
    let mut by_key: HashMap<(Uuid, i32), (i32, String, String)> = rows
        .into_iter()
        .map(|(d, o, page, text, name)| ((d, o), (page, text, name)))
        .collect();
    let out = ranked
        .into_iter()
        .filter_map(|(key, (score, similarity, text_rank))| {
            let (page, text, file_name) = by_key.remove(&key)?;
            Some(Retrieved {
                document_id: key.0,
                ordinal: key.1,
                page,
                text,
                file_name,
                score,
                similarity,
                text_rank,
            })
        })
        .collect();
    metrics::histogram!("dossier_rag_retrieval_seconds", "store" => if state.qdrant.is_some() { "qdrant" } else { "embedded" })
        .record(started.elapsed().as_secs_f64());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_exactly_the_nearest() {
        let dims = 16;
        let rows = 50_000;
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let data: Vec<f32> = (0..rows * dims).map(|_| next()).collect();
        let keys: Vec<(Uuid, i32)> = (0..rows)
            .map(|i| (Uuid::nil(), i32::try_from(i).unwrap_or(0)))
            .collect();
        let vectors = UserVectors {
            version: String::new(),
            model: String::new(),
            dims,
            keys,
            data: data.clone(),
        };
        let query: Vec<f32> = (0..dims).map(|_| next()).collect();
        let found = vectors.nearest(&query, 10);
        let mut all: Vec<(i32, f32)> = (0..rows)
            .map(|r| {
                let v = &data[r * dims..(r + 1) * dims];
                (
                    i32::try_from(r).unwrap_or(0),
                    v.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>(),
                )
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        let expected: Vec<i32> = all.iter().take(10).map(|(r, _)| *r).collect();
        let got: Vec<i32> = found.iter().map(|(_, o, _)| *o).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn questions_become_search_terms_with_synonyms() {
        let terms = terms("What is my passport number?");
        assert!(terms.contains(&"passport".to_owned()));
        assert!(terms.contains(&"no".to_owned()));
        assert!(!terms.contains(&"what".to_owned()));
        let query = ts_query(&terms).unwrap_or_default();
        assert!(query.contains("'passport':*"), "{query}");
        let all = ts_query_all(&term_groups("What is my passport number?")).unwrap_or_default();
        assert!(
            all.starts_with("('passport') & ('number' | 'no' | 'nr'"),
            "{all}"
        );
        // Nothing a user types reaches the tsquery syntax.
        assert_eq!(ts_query(&super::terms("'):* & !(")), None);
        assert!(super::terms("какой номер паспорта").contains(&"паспорта".to_owned()));
    }
}
