//! Tenant-isolation canary: 1,000 people whose archives share their vocabulary, each with one
//! document carrying a marker only they have; 10,000 calls (questions that name another
//! person's marker, document lists, downloads of one's own and of others' files) through the
//! real router, embedder and search. Not one answer, list or file may belong to someone else.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use app::auth::sessions::{self, SessionKind};
use futures::StreamExt;
use serde_json::json;
use testkit::Lcg;
use uuid::Uuid;

use crate::helpers::*;

const PEOPLE: usize = 1_000;
const QUESTIONS: usize = 2_000;
const LISTS: usize = 4_000;
const DOWNLOADS: usize = 4_000;

const SHARED: &[&str] = &[
    "invoice",
    "total",
    "payment",
    "contract",
    "tenant",
    "insurance",
    "policy",
    "receipt",
    "balance",
    "statement",
    "refund",
    "delivery",
];

fn marker(person: usize) -> String {
    format!("canary{person:04}mark")
}

struct Person {
    cookie: String,
    document: Uuid,
    bytes: Vec<u8>,
}

async fn seed(app: &TestApp, rng: &mut Lcg) -> Vec<Person> {
    let db = &app.state.db;
    let ids: Vec<Uuid> = (0..PEOPLE).map(|_| Uuid::now_v7()).collect();
    let emails: Vec<String> = (0..PEOPLE)
        .map(|n| format!("canary{n}@example.test"))
        .collect();
    sqlx::query(
        "INSERT INTO users (id, email, email_normalized)
         SELECT id, e, e FROM unnest($1::uuid[], $2::text[]) AS x(id, e)",
    )
    .bind(&ids)
    .bind(&emails)
    .execute(db)
    .await
    .expect("insert the people");
    let mut people = Vec::with_capacity(PEOPLE);
    for (n, user) in ids.iter().enumerate() {
        let document = Uuid::now_v7();
        let name = format!("statement-{n}.txt");
        let text = format!(
            "{} {} {} {} for {} reference {n}",
            SHARED[n % SHARED.len()],
            SHARED[(n * 7) % SHARED.len()],
            SHARED[(n * 3 + 1) % SHARED.len()],
            SHARED[(n * 5 + 2) % SHARED.len()],
            marker(n)
        );
        let bytes = text.clone().into_bytes();
        let key =
            app::documents::names::object_key(&app.state.settings.env, *user, document, &name);
        app.state
            .objects
            .put(
                &object_store::path::Path::from(key.as_str()),
                bytes.clone().into(),
            )
            .await
            .expect("store the file");
        sqlx::query(
            "INSERT INTO documents (id, user_id, file_name, content_type, size_bytes, source, status, stage)
             VALUES ($1, $2, $3, 'text/plain', $4, 'web', 'processed', 'done')",
        )
        .bind(document)
        .bind(user)
        .bind(&name)
        .bind(bytes.len() as i64)
        .execute(db)
        .await
        .expect("insert a document");
        sqlx::query(
            "INSERT INTO document_files (document_id, part, object_key, content_type, size_bytes, sha256)
             VALUES ($1, 1, $2, 'text/plain', $3, $4)",
        )
        .bind(document)
        .bind(&key)
        .bind(bytes.len() as i64)
        .bind(<sha2::Sha256 as sha2::Digest>::digest(&bytes).to_vec())
        .execute(db)
        .await
        .expect("insert a file");
        let texts = vec![
            text.clone(),
            format!("{} {}", marker(n), SHARED[n % SHARED.len()]),
        ];
        let vectors: Vec<Vec<u8>> = (0..2)
            .map(|_| app::documents::embed::to_bytes(&rng.unit_vector(384)))
            .collect();
        sqlx::query(
            "INSERT INTO chunks (document_id, user_id, model, ordinal, page, text, embedding)
             SELECT $1, $2, 'all-MiniLM-L6-v2', o, 1, t, e
             FROM unnest($3::int[], $4::text[], $5::bytea[]) AS x(o, t, e)",
        )
        .bind(document)
        .bind(user)
        .bind(vec![0i32, 1])
        .bind(&texts)
        .bind(&vectors)
        .execute(db)
        .await
        .expect("insert chunks");
        let token = sessions::create(
            db,
            *user,
            SessionKind::Web,
            Duration::from_secs(3600),
            false,
        )
        .await
        .expect("a session");
        people.push(Person {
            cookie: format!("dossier_session={token}"),
            document,
            bytes,
        });
    }
    sqlx::query("ANALYZE chunks")
        .execute(db)
        .await
        .expect("analyze");
    people
}

enum Call {
    /// Person `who` asks about person `lure`'s marker.
    Ask {
        who: usize,
        lure: usize,
    },
    List {
        who: usize,
    },
    /// Person `who` downloads person `owner`'s document.
    Download {
        who: usize,
        owner: usize,
    },
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_thousand_tenants_never_see_each_others_documents(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let mut rng = Lcg(7);
    let started = Instant::now();
    let people = seed(&app, &mut rng).await;
    let seeded = started.elapsed();

    let mut calls = Vec::with_capacity(QUESTIONS + LISTS + DOWNLOADS);
    for _ in 0..QUESTIONS {
        let who = rng.below(PEOPLE);
        let lure = (who + 1 + rng.below(PEOPLE - 1)) % PEOPLE;
        calls.push(Call::Ask { who, lure });
    }
    for _ in 0..LISTS {
        calls.push(Call::List {
            who: rng.below(PEOPLE),
        });
    }
    for i in 0..DOWNLOADS {
        let who = rng.below(PEOPLE);
        let owner = if i % 2 == 0 { who } else { rng.below(PEOPLE) };
        calls.push(Call::Download { who, owner });
    }
    // Interleave the kinds.
    for i in (1..calls.len()).rev() {
        calls.swap(i, rng.below(i + 1));
    }
    let total = calls.len();
    let owner_of: HashMap<Uuid, usize> = people
        .iter()
        .enumerate()
        .map(|(n, p)| (p.document, n))
        .collect();

    let app = &app;
    let people = &people;
    let owner_of = &owner_of;
    let outcomes: Vec<Result<&'static str, String>> = futures::stream::iter(calls)
        .map(|call| async move {
            match call {
                Call::Ask { who, lure } => {
                    let question = format!("what is the invoice total for {}?", marker(lure));
                    let reply = call_json(
                        app,
                        "/api/rag/ask",
                        &json!({ "question": question, "stream": null }),
                        &[("origin", ORIGIN), ("cookie", people[who].cookie.as_str())],
                    )
                    .await;
                    if reply.status != 200 {
                        return Err(format!("ask by {who}: {} {}", reply.status, reply.body));
                    }
                    let answer: app::rag::Answer =
                        serde_json::from_str(&reply.body).map_err(|e| e.to_string())?;
                    for source in &answer.sources {
                        if owner_of.get(&source.document_id) != Some(&who) {
                            return Err(format!("ask by {who} cited {source:?}"));
                        }
                    }
                    let foreign = marker(lure);
                    if answer.passages.iter().any(|p| p.text.contains(&foreign))
                        || reply.body.contains(&format!("statement-{lure}.txt"))
                    {
                        return Err(format!("ask by {who} quoted person {lure}"));
                    }
                    // The shared words find the person's own statement: a real answer.
                    let own = marker(who);
                    if answer.found && answer.passages.iter().any(|p| p.text.contains(&own)) {
                        Ok("answered from own")
                    } else {
                        Ok("ask, nothing found")
                    }
                }
                Call::List { who } => {
                    let reply = call_json(
                        app,
                        "/api/documents/list",
                        &json!({}),
                        &[("origin", ORIGIN), ("cookie", people[who].cookie.as_str())],
                    )
                    .await;
                    let list: Vec<app::documents::DocumentSummary> =
                        serde_json::from_str(&reply.body)
                            .map_err(|e| format!("list by {who}: {e}: {}", reply.body))?;
                    let ids: Vec<Uuid> = list.iter().map(|d| d.id).collect();
                    if ids != vec![people[who].document] {
                        return Err(format!("list by {who} gave {ids:?}"));
                    }
                    Ok("list")
                }
                Call::Download { who, owner } => {
                    let request = http::Request::get(format!(
                        "/documents/{}/file?part=1",
                        people[owner].document
                    ))
                    .header("cookie", people[who].cookie.as_str())
                    .body(axum::body::Body::empty())
                    .expect("request");
                    let (status, body) = split(app.request(request).await).await;
                    match (who == owner, status) {
                        (true, 200) if body.as_bytes() == people[owner].bytes.as_slice() => {
                            Ok("own file")
                        }
                        (false, 404) => Ok("refused file"),
                        _ => Err(format!("download by {who} of {owner}'s file: {status}")),
                    }
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let took = started.elapsed() - seeded;

    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {total} calls crossed tenants or failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for outcome in outcomes.iter().flatten() {
        *counts.entry(outcome).or_default() += 1;
    }
    assert_eq!(total, 10_000);
    let answered = counts.get("answered from own").copied().unwrap_or(0);
    assert_eq!(
        answered + counts.get("ask, nothing found").copied().unwrap_or(0),
        QUESTIONS
    );
    // The canary means something only if questions do find documents (their own).
    // (About half are answered: the rest fall under the relevance floor against the synthetic
    // vectors, and say so.)
    assert!(
        answered > QUESTIONS / 4,
        "only {answered} questions were answered"
    );
    assert_eq!(counts["list"], LISTS);
    assert_eq!(counts["own file"] + counts["refused file"], DOWNLOADS);
    assert!(counts["refused file"] > DOWNLOADS / 3);
    println!(
        "isolation canary: {PEOPLE} people seeded in {seeded:.1?}; {total} calls in {took:.1?} \
         ({:.0} calls/s): {counts:?}; 0 foreign results",
        total as f64 / took.as_secs_f64()
    );
}
