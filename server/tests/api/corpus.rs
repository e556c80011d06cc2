//! The bad-input corpus in one place: hostile files through the real upload and pipeline, and
//! injection in the text fields people fill in. Each input gets a clear outcome (a 4xx with a
//! stable code, or a document that ends processed or failed with a reason); nothing already
//! stored is lost; nothing answers 500 or crashes. (Forged and replayed service signatures,
//! initData and callback data have their own tests in `auth.rs`, `miniapp.rs`, `bot.rs`, `ask.rs`
//! and the property tests of `signing.rs`, `init_data.rs` and `ask.rs`.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::documents::{Workers, finished, stored_files, upload, user_id};
use crate::helpers::*;

enum Expect {
    /// Refused at once with this status and error code; nothing stored.
    Refused(u16, &'static str),
    /// Accepted, and ends processed or failed with a reason.
    Kept,
}

/// A PDF that says it is encrypted (the standard security handler, with keys that fit no
/// password).
fn encrypted_pdf() -> Vec<u8> {
    let mut pdf = testkit::text_pdf(&["Secret salary statement"]);
    let at = pdf
        .windows(7)
        .rposition(|w| w == b"trailer")
        .expect("a trailer");
    let tail = String::from_utf8_lossy(&pdf[at..]).replacen(
        "<<",
        "<< /Encrypt << /Filter /Standard /V 1 /R 2 /O (0123456789abcdef0123456789abcdef) /U (fedcba9876543210fedcba9876543210) /P -4 >> /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>]",
        1,
    );
    pdf.truncate(at);
    pdf.extend_from_slice(tail.as_bytes());
    pdf
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn every_hostile_file_gets_a_clear_outcome_and_nothing_stored_is_lost(db: sqlx::PgPool) {
    let mut settings = test_settings();
    settings.documents.max_upload_mb = 1;
    let app = spawn_app_with(db.clone(), settings).await;
    let _workers = Workers::start(&app).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;

    let keep = testkit::text_pdf(&["Invoice 1\nTotal 10.00 EUR"]);
    let reply = upload(&app, &cookie, &[("keep.pdf", &keep)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    finished(&app, &cookie, 1).await;

    let text = |n: usize| testkit::text_pdf(&[&format!("Letter {n}\nDear Ann, thank you.")]);
    let png = testkit::png(&testkit::render_text(
        &["Receipt 42", "Total 3.50 EUR"],
        &testkit::Render::default(),
    ));
    let long_name = format!("{}.pdf", "x".repeat(1000));
    let corpus: Vec<(String, Vec<u8>, Expect)> = vec![
        ("empty.pdf".into(), Vec::new(), Expect::Refused(400, "validation")),
        ("big.pdf".into(), vec![b'%'; 1024 * 1024 + 1], Expect::Refused(413, "too_large")),
        (
            "broken.pdf".into(),
            b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\ntrailer << /Root 1 0 R >>\n%%EOF \xff\xfe".to_vec(),
            Expect::Kept,
        ),
        ("encrypted.pdf".into(), encrypted_pdf(), Expect::Kept),
        ("bomb.docx".into(), testkit::docx_bomb(300 * 1024 * 1024), Expect::Kept),
        ("photo.pdf".into(), png, Expect::Kept),
        ("report.docx".into(), text(1), Expect::Kept),
        ("latin1.txt".into(), b"caf\xe9 cr\xe8me \xff\xfe\x80 not UTF-8".to_vec(), Expect::Kept),
        ("../../../../etc/passwd".into(), text(2), Expect::Kept),
        // Control characters cannot be in a multipart header; the encoder (the bot's, as
        // browsers do) replaces them, and the name is kept readable.
        ("a\u{0}b.pdf".into(), text(7), Expect::Kept),
        ("a\tb\u{7}c\r\n.pdf".into(), text(8), Expect::Kept),
        ("a\u{200b}b\u{feff}c\u{202e}fdp.exe".into(), text(3), Expect::Kept),
        (long_name, text(4), Expect::Kept),
        // Long in a script outside ASCII: percent-encoded on disk it would pass 255 bytes.
        (format!("Счёт за отопление {}.pdf", "я".repeat(150)), text(9), Expect::Kept),
        (format!("{}.pdf", "請求書".repeat(60)), text(10), Expect::Kept),
        ("<img src=x onerror=alert(1)>.pdf".into(), text(5), Expect::Kept),
        ("'; DROP TABLE documents; --.pdf".into(), text(6), Expect::Kept),
    ];
    let mut kept = 1;
    for (name, bytes, expect) in &corpus {
        let reply = upload(&app, &cookie, &[(name.as_str(), bytes.as_slice())]).await;
        match expect {
            Expect::Refused(status, code) => {
                assert_eq!(reply.status, *status, "{name:?}: {}", reply.body);
                assert_eq!(reply.json()["code"], *code, "{name:?}: {}", reply.body);
            }
            Expect::Kept => {
                assert_eq!(reply.status, 200, "{name:?}: {}", reply.body);
                assert_eq!(reply.json()[0]["duplicate"], false, "{name:?}");
                kept += 1;
            }
        }
    }

    let documents = finished(&app, &cookie, kept).await;
    for document in &documents {
        let status = document["status"].as_str().unwrap_or("");
        assert!(
            status == "processed"
                || document["failure_reason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()),
            "each document ends processed or with a reason: {document:#}"
        );
        let name = document["file_name"].as_str().unwrap_or("");
        assert!(
            !name.chars().any(char::is_control) && name.chars().count() <= 255 && !name.is_empty(),
            "display names are cleaned and bounded: {name:?}"
        );
    }
    let by_name = |prefix: &str| -> &Value {
        documents
            .iter()
            .find(|d| {
                d["file_name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .unwrap_or_else(|| panic!("{prefix} listed: {documents:#?}"))
    };
    assert_eq!(
        by_name("bomb.docx")["status"],
        "failed",
        "{:#}",
        by_name("bomb.docx")
    );
    assert_eq!(
        by_name("report.docx")["status"],
        "processed",
        "the bytes decide the type"
    );
    assert_eq!(
        by_name("photo.pdf")["status"],
        "processed",
        "an image named .pdf is read as one"
    );
    assert_eq!(by_name("keep.pdf")["status"], "processed");

    // Every object is one safe segment under the person's prefix, inside the store.
    let keys: Vec<(String,)> = sqlx::query_as(
        "SELECT f.object_key FROM document_files f JOIN documents d ON d.id = f.document_id
          WHERE d.user_id = $1",
    )
    .bind(owner)
    .fetch_all(&db)
    .await
    .expect("keys");
    assert_eq!(keys.len(), kept);
    for (key,) in &keys {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 4, "{key}");
        assert!(
            parts[0].ends_with(&owner.to_string()) && parts[1] == "uploads",
            "{key}"
        );
        assert!(
            !parts
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == "..")
                && !key.chars().any(char::is_control)
                && parts[3].len() <= 255,
            "{key}"
        );
    }
    let files = stored_files(&app);
    assert_eq!(files.len(), kept, "one object per document: {files:#?}");
    assert!(!app.state.settings.data_dir.join("etc").exists());

    // What was there before is intact, byte for byte.
    let keep_id = by_name("keep.pdf")["id"].as_str().expect("id").to_owned();
    let response = app
        .request(
            http::Request::get(format!("/documents/{keep_id}/file"))
                .header("cookie", &cookie)
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    let (status, _) = (response.status(), ());
    assert_eq!(status, 200);
    let body = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body");
    assert_eq!(&body[..], &keep[..]);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn injection_in_text_fields_is_only_ever_data(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    let _workers = Workers::start(&app).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let pdf = testkit::text_pdf(&["Invoice 7\nTotal 12.00 EUR"]);
    assert_eq!(upload(&app, &cookie, &[("a.pdf", &pdf)]).await.status, 200);
    finished(&app, &cookie, 1).await;
    let counts = || async {
        sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM documents),
                    (SELECT count(*) FROM chunks)",
        )
        .fetch_one(&db)
        .await
        .expect("counts")
    };
    let before = counts().await;
    let session = [("origin", ORIGIN), ("cookie", cookie.as_str())];

    // Sign-up: a hostile address is refused or stored verbatim, never run.
    for email in [
        "'; DROP TABLE users; --@example.org",
        "<script>alert(1)</script>@example.org",
        "ann@example.org' OR '1'='1",
        "\u{0}@example.org",
    ] {
        let reply = call(
            &app,
            "/api/auth/sign-up",
            &form(&[("email", email), ("password", "correct horse battery")]),
            &[("origin", ORIGIN), ("x-forwarded-for", "203.0.113.9")],
        )
        .await;
        assert!(
            matches!(reply.status, 200 | 400 | 409),
            "{email:?}: {} {}",
            reply.status,
            reply.body
        );
        if reply.status == 200 {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT email FROM users WHERE email = $1")
                    .bind(email.trim())
                    .fetch_optional(&db)
                    .await
                    .expect("lookup");
            assert_eq!(stored.as_deref(), Some(email.trim()), "stored as typed");
        } else {
            assert!(reply.json()["code"].is_string(), "{}", reply.body);
        }
    }

    // Questions: SQL, HTML and full-text query syntax are words to search for, nothing more.
    for question in [
        "'); DELETE FROM chunks; --",
        "<script>alert(document.cookie)</script> total?",
        "total & | ! ( ) :* <-> \\ ' \"",
        "(((((((",
        "%_%",
        "total:* | invoice:A",
        "\u{202e}\u{0}\u{7} total",
    ] {
        let reply = call_json(
            &app,
            "/api/rag/ask",
            &json!({"question": question, "stream": null}),
            &session,
        )
        .await;
        assert_eq!(reply.status, 200, "{question:?}: {}", reply.body);
        let answer = reply.json();
        assert!(answer["found"].is_boolean(), "{question:?}: {answer:#}");
        assert!(
            !reply.body.contains("<script>"),
            "{question:?}: echoed unescaped? {}",
            reply.body
        );
    }
    // A 4,096-character message (Telegram's maximum) is refused as a question, clearly.
    let long = "total ".repeat(683);
    let reply = call_json(
        &app,
        "/api/rag/ask",
        &json!({"question": &long[..4096], "stream": null}),
        &session,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["code"], "validation");
    // Not JSON, not UTF-8, the wrong shape: 400, never 500.
    for body in [
        &b"{\"question\": "[..],
        b"\xff\xfe\x00{}",
        b"[1,2,3]",
        b"{\"question\": 7}",
    ] {
        let response = app
            .request(
                http::Request::post("/api/rag/ask")
                    .header("content-type", "application/json")
                    .header("accept", "application/json")
                    .header("origin", ORIGIN)
                    .header("cookie", &cookie)
                    .body(axum::body::Body::from(body.to_vec()))
                    .expect("request"),
            )
            .await;
        let (status, text) = split(response).await;
        assert!((400..500).contains(&status), "{body:?}: {status} {text}");
    }
    // The language is one of a fixed set.
    for language in ["en'; DROP TABLE users; --", "<b>ru</b>", "ru\u{0}"] {
        let reply = call(
            &app,
            "/api/account/language/set",
            &form(&[("language", language)]),
            &session,
        )
        .await;
        assert_eq!(reply.status, 400, "{language:?}: {}", reply.body);
    }

    let after = counts().await;
    assert!(after.0 >= before.0, "no account lost");
    assert_eq!(
        (after.1, after.2),
        (before.1, before.2),
        "no document or chunk lost"
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        let reply = me(&app, &cookie).await;
        assert_eq!(reply.status, 200, "still signed in and answering");
    })
    .await
    .expect("answers");
}
