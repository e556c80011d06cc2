//! `make bench`: retrieval for one person with 10k and 100k chunks in PostgreSQL (384-d
//! vectors, as all-MiniLM-L6-v2 makes): the whole `retrieve` (in-process exact vector scan,
//! full-text search, fusion, the chunk rows), with the vectors already in memory, and the
//! vector scan alone; recall is checked against a brute-force scan of the same vectors.

mod common;

use std::time::Instant;

use common::{Scratch, report};
use uuid::Uuid;

const DIMS: usize = 384;
const CHUNKS_PER_DOCUMENT: usize = 100;

struct Rng(u64);

/// Word number `n` of the synthetic vocabulary.
fn vocabulary_word(n: usize) -> String {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ner", "sto", "va", "ter", "din", "ro", "su",
    ];
    let mut word = String::new();
    let mut n = n + 10;
    while n > 0 {
        word.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
    }
    word
}

impl Rng {
    /// 0..5000, word `r` about as likely as 1/(r+1).
    fn zipf(&mut self) -> usize {
        let u = (self.next() + 0.5).clamp(1e-6, 1.0 - 1e-6);
        ((5001f32).powf(u) - 1.0) as usize % 5000
    }

    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn unit(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIMS).map(|_| self.next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        for x in &mut v {
            *x /= norm;
        }
        v
    }
}

/// Topic words; every chunk also gets words of a 5,000-word synthetic vocabulary with a
/// Zipf-like spread, as real text has (a handful of words everywhere, most words rare).
const WORDS: &[&str] = &[
    "invoice",
    "total",
    "payment",
    "contract",
    "tenant",
    "insurance",
    "policy",
    "passport",
    "receipt",
    "balance",
    "statement",
    "doctor",
    "clinic",
    "salary",
    "tax",
    "refund",
    "order",
    "delivery",
    "warranty",
    "account",
];

async fn fill(db: &sqlx::PgPool, user: Uuid, chunks: usize, rng: &mut Rng) -> anyhow::Result<()> {
    for d in 0..chunks / CHUNKS_PER_DOCUMENT {
        let document = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO documents (id, user_id, file_name, content_type, size_bytes, source, status, stage)
             VALUES ($1, $2, $3, 'text/plain', 1, 'web', 'processed', 'done')",
        )
        .bind(document)
        .bind(user)
        .bind(format!("doc-{d}.txt"))
        .execute(db)
        .await?;
        let ordinals: Vec<i32> = (0..CHUNKS_PER_DOCUMENT as i32).collect();
        let texts: Vec<String> = (0..CHUNKS_PER_DOCUMENT)
            .map(|c| {
                let mut text = format!(
                    "{} {} reference {d}-{c}",
                    WORDS[(d + c) % WORDS.len()],
                    WORDS[(d * 7 + c * 3) % WORDS.len()],
                );
                for _ in 0..40 {
                    text.push(' ');
                    text.push_str(&vocabulary_word(rng.zipf()));
                }
                text
            })
            .collect();
        let vectors: Vec<Vec<u8>> = (0..CHUNKS_PER_DOCUMENT)
            .map(|_| app::documents::embed::to_bytes(&rng.unit()))
            .collect();
        sqlx::query(
            "INSERT INTO chunks (document_id, user_id, model, ordinal, page, text, embedding)
             SELECT $1, $2, 'all-MiniLM-L6-v2', o, 1, t, e FROM unnest($3::int[], $4::text[], $5::bytea[]) AS x(o, t, e)",
        )
        .bind(document)
        .bind(user)
        .bind(&ordinals)
        .bind(&texts)
        .bind(&vectors)
        .execute(db)
        .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scratch = Scratch::create("rag").await?;
    let mut settings = scratch.settings();
    settings.env = format!("bench-rag-{}", std::process::id());
    let state = server::build_state(settings).await?;
    let mut rng = Rng(42);
    let user = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, email_normalized) VALUES ($1, 'rag@example.org', 'rag@example.org')")
        .bind(user)
        .execute(&state.db)
        .await?;
    // Another person's chunks share the table (and must never be scanned for this one).
    let other = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, email_normalized) VALUES ($1, 'other@example.org', 'other@example.org')")
        .bind(other)
        .execute(&state.db)
        .await?;
    fill(&state.db, other, 10_000, &mut rng).await?;

    let mut have = 0;
    for target in [10_000usize, 100_000] {
        fill(&state.db, user, target - have, &mut rng).await?;
        have = target;
        sqlx::query("ANALYZE chunks").execute(&state.db).await?;
        let version = app::rag::retrieve::index_version(&state.db, user).await?;
        let started = Instant::now();
        let vectors = state
            .vectors
            .get(&state.db, user, "all-MiniLM-L6-v2", &version)
            .await?;
        println!(
            "{target} chunks: vectors loaded into memory in {:.2?} ({} MiB)",
            started.elapsed(),
            vectors.data.len() * 4 / (1024 * 1024)
        );
        // Exact recall: the scan's top 20 equals a brute-force ranking.
        let mut recall_hits = 0;
        let checks = 20;
        for _ in 0..checks {
            let query = rng.unit();
            let found: Vec<(Uuid, i32)> = vectors
                .nearest(&query, 20)
                .into_iter()
                .map(|(d, o, _)| (d, o))
                .collect();
            let mut all: Vec<(f32, usize)> = (0..vectors.keys.len())
                .map(|row| {
                    let v = &vectors.data[row * DIMS..(row + 1) * DIMS];
                    (v.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>(), row)
                })
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0));
            let expected: Vec<(Uuid, i32)> =
                all[..20].iter().map(|(_, r)| vectors.keys[*r]).collect();
            recall_hits += found.iter().filter(|k| expected.contains(k)).count();
        }
        println!(
            "{target} chunks: recall@20 against brute force = {:.3}",
            recall_hits as f64 / (checks * 20) as f64
        );
        let mut scan = Vec::new();
        for _ in 0..200 {
            let query = rng.unit();
            let started = Instant::now();
            let found = vectors.nearest(&query, 20);
            scan.push(started.elapsed());
            assert_eq!(found.len(), 20);
        }
        report(&format!("vector scan, {target} chunks, top 20"), scan);
        let mut whole = Vec::new();
        for n in 0..200 {
            let query = rng.unit();
            let question = format!(
                "what is the {} {} number",
                WORDS[n % WORDS.len()],
                WORDS[(n * 3) % WORDS.len()]
            );
            let started = Instant::now();
            let found =
                app::rag::retrieve::retrieve(&state, user, &question, &query, "all-MiniLM-L6-v2")
                    .await?;
            whole.push(started.elapsed());
            assert!(found.len() <= app::rag::retrieve::TOP_K);
            assert!(found.iter().all(|r| r.file_name.starts_with("doc-")));
        }
        report(
            &format!("retrieve (vectors + text + fusion), {target} chunks"),
            whole,
        );
        // The same without full-text terms (only stop words): vectors, fusion, chunk rows.
        let mut vectors_only = Vec::new();
        for _ in 0..100 {
            let query = rng.unit();
            let started = Instant::now();
            app::rag::retrieve::retrieve(&state, user, "what is the", &query, "all-MiniLM-L6-v2")
                .await?;
            vectors_only.push(started.elapsed());
        }
        report(
            &format!("retrieve without text search, {target} chunks"),
            vectors_only,
        );
    }
    if std::env::var_os("DOSSIER_BENCH_KEEP_DB").is_some() {
        println!("kept database {} for inspection", scratch.name);
        return Ok(());
    }
    scratch.drop_db(state).await?;
    Ok(())
}
