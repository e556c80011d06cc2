//! Documents end to end inside the server: upload (web and signed service), the JetStream
//! pipeline with real Tesseract, poppler and the embedding model, notifications, downloads,
//! duplicates, limits, S3, and a worker crash.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::*;

/// The pipeline's workers for one test; stopped (like a crash: nothing acknowledged) on drop.
pub struct Workers {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    pub async fn start(app: &TestApp) -> Self {
        let shutdown = CancellationToken::new();
        let tasks = server::pipeline::start(app.state.clone(), shutdown.clone())
            .await
            .expect("start the pipeline");
        Self { shutdown, tasks }
    }

    /// Kills the workers mid-flight: tasks are dropped wherever they are, nothing is acked.
    pub fn kill(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Uploads files as the signed-in person (multipart, as the browser's form sends it).
pub async fn upload(app: &TestApp, cookie: &str, files: &[(&str, &[u8])]) -> Reply {
    upload_with(app, cookie, &[], files).await
}

/// `upload` with text fields too.
pub async fn upload_with(
    app: &TestApp,
    cookie: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &[u8])],
) -> Reply {
    let files: Vec<(&str, &str, &[u8])> = files
        .iter()
        .map(|(name, bytes)| ("file", *name, *bytes))
        .collect();
    let (content_type, body) = bot::api::multipart_body("test-boundary-0123", fields, &files);
    let request = http::Request::post("/api/documents/upload")
        .header("content-type", content_type)
        .header("accept", "application/json")
        .header("origin", ORIGIN)
        .header("cookie", cookie)
        .body(axum::body::Body::from(body))
        .expect("request");
    let (status, body) = split(app.request(request).await).await;
    Reply {
        status,
        body,
        cookie: None,
    }
}

pub async fn user_id(db: &sqlx::PgPool, email: &str) -> Uuid {
    let (id,): (Uuid,) = sqlx::query_as("SELECT id FROM users WHERE email_normalized = $1")
        .bind(email)
        .fetch_one(db)
        .await
        .expect("the user");
    id
}

/// Links a Telegram account directly (linking itself is tested in `link.rs`).
pub async fn link_telegram(db: &sqlx::PgPool, user: Uuid, telegram_user: i64, language: &str) {
    sqlx::query(
        "INSERT INTO telegram_accounts (telegram_user_id, user_id, chat_id, first_name, language_code, linked_at)
         VALUES ($1, $2, $1, 'Ann', $3, now())",
    )
    .bind(telegram_user)
    .bind(user)
    .bind(language)
    .execute(db)
    .await
    .expect("link");
}

/// Waits until every document of `user` has left the pipeline; returns them (newest first).
pub async fn finished(app: &TestApp, cookie: &str, expected: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let reply = call_json(
            app,
            "/api/documents/list",
            &serde_json::json!({}),
            &[("origin", ORIGIN), ("cookie", cookie)],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let last = reply.json().as_array().cloned().unwrap_or_default();
        let done = last.len() == expected
            && last
                .iter()
                .all(|d| !matches!(d["status"].as_str(), Some("queued" | "processing")));
        if done {
            return last;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "documents did not finish: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /documents/{id}/file` with a session cookie: status, headers and body.
async fn download(app: &TestApp, cookie: &str, id: &str) -> (u16, http::HeaderMap, Vec<u8>) {
    let response = app
        .request(
            http::Request::get(format!("/documents/{id}/file"))
                .header("cookie", cookie)
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    use http_body_util::BodyExt;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn find<'a>(documents: &'a [Value], name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["file_name"] == name)
        .unwrap_or_else(|| panic!("no document {name} in {documents:#?}"))
}

async fn pages(db: &sqlx::PgPool, id: &str) -> Vec<(i32, String, bool)> {
    sqlx::query_as(
        "SELECT page, text, ocr FROM document_pages WHERE document_id = $1::uuid ORDER BY page",
    )
    .bind(id)
    .fetch_all(db)
    .await
    .expect("pages")
}

async fn count(db: &sqlx::PgPool, sql: &str, id: Uuid) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .bind(id)
        .fetch_one(db)
        .await
        .expect("count");
    n
}

/// Files under the test's local object store.
pub fn stored_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    testkit::files_under(&app.state.settings.data_dir.join("objects"))
}

pub const INVOICE: &str = "INVOICE\nInvoice No. INV-2026-0042\nDate: 12.03.2026\nBill to: Anna Petrova\n\nConsulting services  1,000.00 EUR\nVAT 19%  190.00 EUR\nTotal  1,190.00 EUR\nPayment due: 2026-04-12\nIBAN: DE89 3704 0044 0532 0130 00";

fn scan(lines: &[&str]) -> Vec<u8> {
    testkit::png(&testkit::render_text(
        lines,
        &testkit::Render {
            noise: true,
            ..testkit::Render::default()
        },
    ))
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn pdfs_scans_and_russian_scans_are_read_classified_extracted_and_embedded(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    let _workers = Workers::start(&app).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;

    let pdf = testkit::text_pdf(&[
        INVOICE,
        "Terms: payment within 30 days of the invoice date.",
    ]);
    let english = scan(&[
        "PASSPORT",
        "Surname: SMITH",
        "Given names: JOHN ROBERT",
        "Passport No. 72 1234567",
        "Date of birth: 14.07.1985",
        "Date of expiry: 01.02.2031",
    ]);
    let russian = scan(&[
        "ПАСПОРТ ГРАЖДАНИНА",
        "РОССИЙСКОЙ ФЕДЕРАЦИИ",
        "Фамилия: Петрова",
        "Номер паспорта: 45 12 345678",
        "Дата рождения: 03.05.1990",
    ]);
    let reply = upload(
        &app,
        &cookie,
        &[
            ("invoice.pdf", &pdf),
            ("passport scan.png", &english),
            ("паспорт.png", &russian),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let receipts = reply.json();
    assert_eq!(receipts.as_array().map(Vec::len), Some(3), "{receipts:#}");
    assert!(
        receipts
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| r["duplicate"] == false)
    );

    let documents = finished(&app, &cookie, 3).await;
    let invoice = find(&documents, "invoice.pdf");
    assert_eq!(invoice["status"], "processed", "{invoice:#}");
    assert_eq!(invoice["doc_type"], "invoice", "{invoice:#}");
    assert_eq!(invoice["pages"], 2);
    assert_eq!(invoice["content_type"], "application/pdf");
    let fields = &invoice["fields"];
    assert!(
        fields["ibans"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i == "DE89370400440532013000"),
        "{fields:#}"
    );
    assert!(
        fields["amounts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["value"] == "1190.00" && a["currency"] == "EUR"),
        "{fields:#}"
    );
    let invoice_pages = pages(&db, invoice["id"].as_str().expect("id")).await;
    assert_eq!(invoice_pages.len(), 2);
    assert!(invoice_pages[0].1.contains("Invoice No. INV-2026-0042"));
    assert!(!invoice_pages[0].2, "a text layer is not OCR'd");

    let passport = find(&documents, "passport scan.png");
    assert_eq!(passport["status"], "processed", "{passport:#}");
    assert_eq!(passport["doc_type"], "id_document", "{passport:#}");
    let scanned = pages(&db, passport["id"].as_str().expect("id")).await;
    assert!(scanned[0].2, "an image is OCR'd");
    // OCR may or may not keep the space inside the number.
    assert!(
        scanned[0].1.replace(' ', "").contains("721234567"),
        "{}",
        scanned[0].1
    );

    let russian_doc = find(&documents, "паспорт.png");
    assert_eq!(russian_doc["status"], "processed", "{russian_doc:#}");
    let russian_pages = pages(&db, russian_doc["id"].as_str().expect("id")).await;
    assert!(
        russian_pages[0].1.contains("ПАСПОРТ"),
        "{}",
        russian_pages[0].1
    );
    assert!(
        russian_pages[0].1.contains("45 12 345678"),
        "{}",
        russian_pages[0].1
    );

    // Chunks: stored with their vectors, filtered by the owner, page-aware.
    let (chunks, owners, dims): (i64, i64, Option<i32>) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT user_id), min(length(embedding)) / 4 FROM chunks",
    )
    .fetch_one(&db)
    .await
    .expect("chunks");
    assert!(chunks >= 3, "{chunks}");
    assert_eq!(owners, 1);
    assert_eq!(dims, Some(384));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM chunks WHERE user_id <> $1",
            owner
        )
        .await,
        0
    );

    // The original comes back byte for byte, to its owner only.
    let id = invoice["id"].as_str().expect("id");
    let (status, headers, body) = download(&app, &cookie, id).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment; filename=\"invoice.pdf\"")
    );
    assert_eq!(body, pdf);
    let other = sign_up(&app, "eve@example.org").await;
    let (status, _, _) = download(&app, &other, id).await;
    assert_eq!(status, 404, "another person's file is not found");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn unsupported_files_duplicates_and_oversize_files_are_handled_clearly(db: sqlx::PgPool) {
    let mut settings = test_settings();
    settings.documents.max_upload_mb = 1;
    let app = spawn_app_with(db.clone(), settings).await;
    let _workers = Workers::start(&app).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;

    // An executable pretending to be a PDF: kept, and marked unsupported with a reason.
    let mut binary = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
    binary.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    let note = testkit::text_pdf(&["Dear Ann,\nthank you for your letter.\nSincerely, Bob"]);
    let reply = upload(
        &app,
        &cookie,
        &[("report.pdf", &binary), ("note.pdf", &note)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let documents = finished(&app, &cookie, 2).await;
    let unsupported = find(&documents, "report.pdf");
    assert_eq!(unsupported["status"], "unsupported", "{unsupported:#}");
    assert!(
        unsupported["failure_reason"]
            .as_str()
            .is_some_and(|r| r.contains("not supported")),
        "{unsupported:#}"
    );
    assert_eq!(find(&documents, "note.pdf")["status"], "processed");
    let objects_before = stored_files(&app).len();
    assert_eq!(objects_before, 2);
    let chunks_before = count(&db, "SELECT count(*) FROM chunks WHERE user_id = $1", owner).await;

    // The same file again, under another name: recognised, nothing stored or processed twice.
    let reply = upload(&app, &cookie, &[("note (copy).pdf", &note)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let receipt = &reply.json()[0];
    assert_eq!(receipt["duplicate"], true, "{receipt:#}");
    assert_eq!(receipt["document"]["file_name"], "note.pdf");
    let documents = finished(&app, &cookie, 2).await;
    assert_eq!(documents.len(), 2);
    assert_eq!(stored_files(&app).len(), objects_before);
    assert_eq!(
        count(&db, "SELECT count(*) FROM chunks WHERE user_id = $1", owner).await,
        chunks_before
    );

    // Larger than the limit: refused with a clear error; nothing stored.
    let big = vec![b'a'; 1024 * 1024 + 10];
    let reply = upload(&app, &cookie, &[("big.txt", &big)]).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.json()["code"], "too_large");
    assert_eq!(reply.json()["max_mb"], 1);
    // An empty file: refused too.
    let reply = upload(&app, &cookie, &[("empty.pdf", b"")]).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(stored_files(&app).len(), objects_before);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM documents WHERE user_id = $1",
            owner
        )
        .await,
        2
    );

    // Not multipart at all: a clear 400, not a crash.
    let reply = call_json(
        &app,
        "/api/documents/upload",
        &serde_json::json!({"file": "x"}),
        &[("origin", ORIGIN), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["code"], "validation");

    // Without a session there is no upload at all.
    let reply = upload(&app, "dossier_session=forged", &[("x.txt", b"hello")]).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn an_upload_repeated_with_its_source_key_gets_its_first_receipt(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let pdf = testkit::text_pdf(&["Invoice 7\nTotal 12.00 EUR"]);
    let send = |key: &'static str| {
        let (app, cookie, pdf) = (&app, &cookie, &pdf);
        async move {
            let reply = upload_with(app, cookie, &[("source_key", key)], &[("a.pdf", pdf)]).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.json()[0].clone()
        }
    };
    let first = send("tg:42").await;
    assert_eq!(first["duplicate"], false);
    // The same upload again (its answer was lost): the same document, not a duplicate.
    let repeat = send("tg:42").await;
    assert_eq!(repeat["duplicate"], false);
    assert_eq!(repeat["document"]["id"], first["document"]["id"]);
    // The same file in another message: a duplicate.
    assert_eq!(send("tg:43").await["duplicate"], true);
    let rows = count(
        &db,
        "SELECT count(*) FROM documents WHERE user_id = $1",
        user_id(&db, "ann@example.org").await,
    )
    .await;
    assert_eq!(rows, 1);
    assert_eq!(stored_files(&app).len(), 1);
    // A key that is not a key is refused, nothing stored.
    let reply = upload_with(
        &app,
        &cookie,
        &[("source_key", "../etc")],
        &[("b.pdf", b"%PDF-1.4 b")],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("source_key"), "{}", reply.body);
    assert_eq!(stored_files(&app).len(), 1);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_linked_person_is_notified_once_and_preferences_are_honoured(db: sqlx::PgPool) {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    use futures::StreamExt;

    let app = spawn_app(db.clone()).await;
    let _workers = Workers::start(&app).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;
    link_telegram(&db, owner, 7001, "ru").await;

    let pdf = testkit::text_pdf(&[INVOICE]);
    let empty_page = testkit::png(&testkit::render_text(&[], &testkit::Render::default()));
    let reply = upload(
        &app,
        &cookie,
        &[("invoice.pdf", &pdf), ("blank.png", &empty_page)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let documents = finished(&app, &cookie, 2).await;
    assert_eq!(find(&documents, "blank.png")["status"], "failed");

    // What the bot would consume.
    let stream = app
        .state
        .jetstream
        .get_stream(app.state.subjects.notifications_stream())
        .await
        .expect("the notification stream");
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("test".into()),
            ack_policy: AckPolicy::Explicit,
            ..pull::Config::default()
        })
        .await
        .expect("consumer");
    let mut received = Vec::new();
    let mut messages = consumer.messages().await.expect("messages");
    while received.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("two notifications")
            .expect("a message")
            .expect("no error");
        received.push(serde_json::from_slice::<Value>(&message.payload).expect("json"));
        message.ack().await.expect("ack");
    }
    let processed = received
        .iter()
        .find(|n| n["event"]["kind"] == "document_processed")
        .expect("a processed notification");
    assert_eq!(processed["chat_id"], 7001);
    assert_eq!(processed["language_code"], "ru");
    assert_eq!(processed["event"]["doc_type"], "invoice");
    assert_eq!(processed["event"]["file_name"], "invoice.pdf");
    let failed = received
        .iter()
        .find(|n| n["event"]["kind"] == "document_failed")
        .expect("a failure notification");
    assert!(
        failed["event"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no readable text")),
        "{failed:#}"
    );
    // Exactly once: re-announcing completion (a redelivery) publishes nothing new.
    let id: Uuid = processed["event"]["document_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    app::documents::pipeline::announce(
        &app.state,
        id,
        app::documents::pipeline::Outcome::Completed,
    )
    .await
    .expect("announce");
    app::documents::pipeline::notify(&app.state, id)
        .await
        .expect("notify");
    let extra = tokio::time::timeout(Duration::from_millis(1500), messages.next()).await;
    assert!(extra.is_err(), "a second notification: {extra:?}");

    // Switched off: a processed document is not announced.
    let reply = call_json(
        &app,
        "/api/notifications/preferences/set",
        &serde_json::json!({"preferences": {"processed": false, "failed": true}}),
        &[("origin", ORIGIN), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let other =
        testkit::text_pdf(&["Dear Ann,\nyour appointment is confirmed.\nSincerely, Dr. Bob"]);
    upload(&app, &cookie, &[("letter.pdf", &other)]).await;
    let documents = finished(&app, &cookie, 3).await;
    let letter = find(&documents, "letter.pdf");
    assert_eq!(letter["status"], "processed");
    let letter_id: Uuid = letter["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    eventually(
        "the letter's completion was handled",
        Duration::from_secs(20),
        || async {
            count(
                &db,
                "SELECT count(*) FROM documents WHERE id = $1 AND notified_at IS NOT NULL",
                letter_id,
            )
            .await
                == 1
        },
    )
    .await;
    let extra = tokio::time::timeout(Duration::from_millis(1500), messages.next()).await;
    assert!(
        extra.is_err(),
        "a notification despite the preference: {extra:?}"
    );
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_worker_killed_mid_stage_leaves_every_document_completed_once(db: sqlx::PgPool) {
    let mut settings = test_settings();
    // A crashed worker's messages come back after the ack wait: keep it short here.
    settings.documents.ack_wait_secs = 2;
    let app = spawn_app_with(db.clone(), settings).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;
    link_telegram(&db, owner, 7002, "en").await;

    let workers = Workers::start(&app).await;
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            let bytes = if i % 2 == 0 {
                scan(&[
                    &format!("RECEIPT {i}"),
                    "Cashier: Anna",
                    &format!("Total {i}.50 EUR"),
                ])
            } else {
                testkit::text_pdf(&[&format!("Invoice No. {i}\nTotal {i}00.00 EUR\n{INVOICE}")])
            };
            (
                format!("doc-{i}.{}", if i % 2 == 0 { "png" } else { "pdf" }),
                bytes,
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let reply = upload(&app, &cookie, &refs).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Kill as soon as a document is mid-stage.
    eventually(
        "a document being processed",
        Duration::from_secs(30),
        || async {
            count(
                &db,
                "SELECT count(*) FROM documents WHERE user_id = $1 AND status = 'processing'",
                owner,
            )
            .await
                > 0
        },
    )
    .await;
    workers.kill();
    let mid_flight = count(
        &db,
        "SELECT count(*) FROM documents WHERE user_id = $1 AND stage <> 'done'",
        owner,
    )
    .await;
    assert!(mid_flight > 0, "the crash happened mid-flight");

    let _restarted = Workers::start(&app).await;
    let documents = finished(&app, &cookie, files.len()).await;
    assert!(
        documents.iter().all(|d| d["status"] == "processed"),
        "{documents:#?}"
    );
    // One row, one object and one chunk set per document.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM documents WHERE user_id = $1",
            owner
        )
        .await,
        6
    );
    assert_eq!(stored_files(&app).len(), 6);
    let (sets,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT document_id, count(*) AS n, count(DISTINCT ordinal) AS d, min(ordinal) AS lo, max(ordinal) AS hi
           FROM chunks GROUP BY document_id) s WHERE n = d AND lo = 0 AND hi = n - 1",
    )
    .fetch_one(&db)
    .await
    .expect("chunk sets");
    assert_eq!(sets, 6);
    // One notification each, in the stream the bot reads.
    eventually(
        "every document notified",
        Duration::from_secs(30),
        || async {
            count(
                &db,
                "SELECT count(*) FROM documents WHERE user_id = $1 AND notified_at IS NOT NULL",
                owner,
            )
            .await
                == 6
        },
    )
    .await;
    let info = app
        .state
        .jetstream
        .get_stream(app.state.subjects.notifications_stream())
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert_eq!(info.state.messages, 6, "one notification per document");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn documents_are_stored_in_a_real_s3_server_when_configured(db: sqlx::PgPool) {
    let s3 = S3Server::start().await;
    let mut settings = test_settings();
    settings.s3.bucket = Some("dossier".into());
    settings.s3.endpoint = Some(s3.url.clone());
    settings.s3.access_key_id = Some("test".into());
    settings.s3.secret_access_key = Some(secrecy::SecretString::from("test-secret"));
    let app = spawn_app_with(db.clone(), settings).await;
    let _workers = Workers::start(&app).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;

    let pdf = testkit::text_pdf(&[INVOICE]);
    let reply = upload(&app, &cookie, &[("../../etc/invoice.pdf", &pdf)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let documents = finished(&app, &cookie, 1).await;
    assert_eq!(documents[0]["status"], "processed", "{documents:#?}");
    let id = documents[0]["id"].as_str().expect("id");
    // The key follows the layout, with the hostile name made safe, and the bytes are in S3.
    let key = format!(
        "{}-{owner}/uploads/{id}/invoice.pdf",
        app.state.subjects.env()
    );
    assert!(app.state.objects.to_string().contains("AmazonS3"));
    let stored = app
        .state
        .objects
        .get(&object_store::path::Path::from(key.as_str()))
        .await
        .unwrap_or_else(|e| panic!("{key} is in S3: {e}"))
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(stored.as_ref(), pdf.as_slice());
    assert!(stored_files(&app).is_empty(), "nothing written locally");
}

/// A real S3 server (moto's, from PyPI; `make test` installs it) on a free port, with a bucket.
pub struct S3Server {
    child: std::process::Child,
    pub url: String,
}

impl S3Server {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let bin = std::env::var("DOSSIER_TEST_MOTO_BIN").unwrap_or_else(|_| "moto_server".into());
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin} (pip install 'moto[server]'): {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = http.put(format!("{url}/dossier")).send().await {
                assert!(
                    response.status().is_success(),
                    "create the bucket: {}",
                    response.status()
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, url }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bot's configuration with NATS (notifications), against the emulator and the API.
pub fn bot_with_nats(app: &TestApp, emulator: &crate::bot::Emulator, api_url: &str) -> bot::Config {
    let mut config = crate::bot::bot_config(emulator, api_url, (30, 30));
    config.nats = Some(bot::config::Nats {
        url: app.state.settings.nats_url.clone(),
        env: app.state.settings.env.clone(),
        lease_ttl: Duration::from_secs(10),
        replicas: 1,
    });
    config
}

/// Sends a file to the bot as a Telegram user (the emulator's control API).
pub async fn telegram_sends(
    emulator: &crate::bot::Emulator,
    user: i64,
    kind: &str,
    name: &str,
    bytes: &[u8],
    media_group: Option<&str>,
) {
    use base64::Engine;
    let mut body = serde_json::json!({
        "file_name": name,
        "content_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        "first_name": "Ann",
        "language_code": "en",
    });
    if let Some(group) = media_group {
        body["media_group_id"] = serde_json::json!(group);
    }
    emulator
        .post(&format!("/control/users/{user}/{kind}"), body)
        .await;
}

/// Waits until the bot's messages to `chat` satisfy `done`; returns their texts.
pub async fn chat_until(
    emulator: &crate::bot::Emulator,
    chat: i64,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let texts: Vec<String> = emulator
            .get(&format!("/control/chats/{chat}/history"))
            .await
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["from"]["is_bot"] == true)
            .map(|m| crate::bot::text(m).to_owned())
            .collect();
        if done(&texts) {
            return texts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {texts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_pdf_sent_to_the_bot_is_uploaded_processed_announced_and_on_the_web(db: sqlx::PgPool) {
    use crate::bot::{Emulator, RunningBot, serve_app};

    let (app, api_url) = serve_app(db.clone()).await;
    let _workers = Workers::start(&app).await;
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let config = bot_with_nats(&app, &emulator, &api_url);
    let running = RunningBot::start(config);
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;
    link_telegram(&db, owner, 8101, "en").await;

    let pdf = testkit::text_pdf(&[INVOICE]);
    telegram_sends(&emulator, 8101, "documents", "invoice.pdf", &pdf, None).await;
    let texts = chat_until(&emulator, 8101, "the processed notification", |texts| {
        texts.iter().any(|t| t.contains("processed"))
    })
    .await;
    // The status message became "Uploaded"; then the notification came.
    assert_eq!(
        texts[0], "✅ Uploaded invoice.pdf, processing…",
        "{texts:#?}"
    );
    assert!(
        texts[1].starts_with("✅ invoice.pdf processed — Invoice"),
        "{texts:#?}"
    );
    assert!(
        texts[1].contains("1,190.00 EUR") || texts[1].contains("1190.00 EUR"),
        "{texts:#?}"
    );

    // On the web: listed, and the same bytes come back.
    let documents = finished(&app, &cookie, 1).await;
    assert_eq!(documents[0]["file_name"], "invoice.pdf");
    let id = documents[0]["id"].as_str().expect("id");
    let (status, _, body) = download(&app, &cookie, id).await;
    assert_eq!(status, 200);
    assert_eq!(body, pdf);

    // The same file again: recognised in the chat.
    telegram_sends(&emulator, 8101, "documents", "again.pdf", &pdf, None).await;
    let texts = chat_until(&emulator, 8101, "the duplicate reply", |texts| {
        texts.iter().any(|t| t.contains("already in your archive"))
    })
    .await;
    assert!(
        texts
            .iter()
            .any(|t| t == "This file is already in your archive as invoice.pdf (processed)."),
        "{texts:#?}"
    );

    // Larger than Telegram lets a bot download: refused before any download, nothing stored.
    let big = vec![b'x'; 21 * 1024 * 1024];
    telegram_sends(&emulator, 8101, "documents", "huge.pdf", &big, None).await;
    let texts = chat_until(&emulator, 8101, "the too-large reply", |texts| {
        texts.iter().any(|t| t.contains("too large"))
    })
    .await;
    assert!(
        texts
            .iter()
            .any(|t| t == "⚠️ huge.pdf is too large: I can take files up to 20 MB."),
        "{texts:#?}"
    );

    // An album: two photos, one document of two pages.
    let first = scan(&["RECEIPT", "Cashier: Anna", "Total 12.50 EUR"]);
    let second = scan(&["Thank you for shopping", "Change 0.50 EUR"]);
    telegram_sends(&emulator, 8101, "photos", "a.png", &first, Some("album-1")).await;
    telegram_sends(&emulator, 8101, "photos", "b.png", &second, Some("album-1")).await;
    let texts = chat_until(&emulator, 8101, "the album's notification", |texts| {
        texts.iter().filter(|t| t.contains(" processed — ")).count() == 2
    })
    .await;
    assert!(
        texts
            .iter()
            .any(|t| t == "✅ Uploaded 2 photos as one document, processing…"),
        "{texts:#?}"
    );
    let documents = finished(&app, &cookie, 2).await;
    let album = documents
        .iter()
        .find(|d| d["files"] == 2)
        .expect("one document with both photos");
    assert_eq!(album["pages"], 2, "{album:#}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM documents WHERE user_id = $1",
            owner
        )
        .await,
        2
    );

    // `/docs` lists them.
    emulator.say(8101, "/docs", "en").await;
    let texts = chat_until(&emulator, 8101, "the /docs list", |texts| {
        texts
            .iter()
            .any(|t| t.starts_with("Your latest documents:"))
    })
    .await;
    let list = texts
        .iter()
        .find(|t| t.starts_with("Your latest documents:"))
        .expect("list");
    assert!(list.contains("✅ invoice.pdf — Invoice"), "{list}");
    running.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_notification_waits_for_a_bot_that_is_down_and_is_sent_once(db: sqlx::PgPool) {
    use crate::bot::{Emulator, RunningBot, serve_app};

    let (app, api_url) = serve_app(db.clone()).await;
    let _workers = Workers::start(&app).await;
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let config = bot_with_nats(&app, &emulator, &api_url);
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;
    link_telegram(&db, owner, 8201, "en").await;

    // The bot is down while the document is processed.
    let pdf = testkit::text_pdf(&[INVOICE]);
    upload(&app, &cookie, &[("while-down.pdf", &pdf)]).await;
    finished(&app, &cookie, 1).await;
    eventually(
        "the completion was handled",
        Duration::from_secs(20),
        || async {
            count(
                &db,
                "SELECT count(*) FROM documents WHERE user_id = $1 AND notified_at IS NOT NULL",
                owner,
            )
            .await
                == 1
        },
    )
    .await;

    // It comes back: the waiting notification arrives.
    let running = RunningBot::start(config.clone());
    chat_until(&emulator, 8201, "the waiting notification", |texts| {
        texts
            .iter()
            .any(|t| t.starts_with("✅ while-down.pdf processed"))
    })
    .await;
    running.stop().await;

    // A restart sends nothing again; a later document proves the bot read the stream since.
    let running = RunningBot::start(config);
    let letter = testkit::text_pdf(&["Dear Ann,\nyour order has shipped.\nSincerely, Bob"]);
    upload(&app, &cookie, &[("later.pdf", &letter)]).await;
    let texts = chat_until(&emulator, 8201, "the later notification", |texts| {
        texts
            .iter()
            .any(|t| t.starts_with("✅ later.pdf processed"))
    })
    .await;
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.starts_with("✅ while-down.pdf processed"))
            .count(),
        1,
        "{texts:#?}"
    );
    running.stop().await;

    // The claim is what keeps a redelivered notification from going out twice, and the mark
    // of having sent it is what keeps a crash before the send from losing it.
    let api = crate::bot::bot_api(&api_url);
    let claim = |holder: &'static str| {
        let api = api.clone();
        async move {
            api.call::<_, app::notifications::NotificationClaims>(
                "telegram/notifications/claim",
                None,
                &serde_json::json!({"ids": ["x:1"], "holder": holder}),
            )
            .await
            .expect("claim")
        }
    };
    assert_eq!(claim("bot-1").await.claimed, vec!["x:1"]);
    // bot-1 was killed before sending: bot-2 gets it again.
    assert_eq!(claim("bot-2").await.claimed, vec!["x:1"]);
    api.call::<_, ()>(
        "telegram/notifications/done",
        None,
        &serde_json::json!({"ids": ["x:1"]}),
    )
    .await
    .expect("done");
    let again = claim("bot-3").await;
    assert!(again.claimed.is_empty());
    assert_eq!(again.done, vec!["x:1"]);
}
