//! What the Mini App calls: linking an unlinked Telegram user in one step, the account
//! overview, the language, export, account deletion and sending a document to the chat.

use std::io::Read;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::documents::{INVOICE, Workers, finished, link_telegram, upload, user_id};
use crate::helpers::*;

fn init_data(telegram_user_id: i64, first_name: &str, auth_date: i64) -> String {
    let user = format!(
        r#"{{"id":{telegram_user_id},"first_name":"{first_name}","username":"{}_tg","language_code":"ru"}}"#,
        first_name.to_lowercase()
    );
    app::auth::init_data::sign(
        &[("user", &user), ("auth_date", &auth_date.to_string())],
        crate::bot::TOKEN,
        None,
    )
}

/// Files (not directories) anywhere under `dir`.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn connect(app: &TestApp, init: &str, email: &str, password: &str, create: bool) -> Reply {
    call(
        app,
        "/api/auth/telegram/miniapp/connect",
        &form(&[
            ("init_data", init),
            ("email", email),
            ("password", password),
            ("create", if create { "true" } else { "false" }),
        ]),
        &[("origin", ORIGIN)],
    )
    .await
}

fn header(token: &str) -> [(&str, &str); 1] {
    [("x-dossier-session", token)]
}

async fn mini_session(app: &TestApp, telegram_user: i64) -> String {
    let reply = call(
        app,
        "/api/auth/telegram/miniapp",
        &form(&[("init_data", &init_data(telegram_user, "Ann", now()))]),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["token"].as_str().expect("token").to_owned()
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn an_unlinked_telegram_user_links_or_creates_an_account_in_one_step(db: sqlx::PgPool) {
    let app = spawn_app_with(db.clone(), crate::bot::bot_settings()).await;
    sign_up(&app, "ann@example.org").await;

    // Stale launch data gets its own code: the Mini App says "reopen", not "forged".
    let stale = call(
        &app,
        "/api/auth/telegram/miniapp",
        &form(&[("init_data", &init_data(501, "Ann", now() - 3600))]),
        &[],
    )
    .await;
    assert_eq!(stale.status, 401);
    assert_eq!(stale.json()["code"], "init_data_expired");
    let unlinked = call(
        &app,
        "/api/auth/telegram/miniapp",
        &form(&[("init_data", &init_data(501, "Ann", now()))]),
        &[],
    )
    .await;
    assert_eq!(unlinked.json()["code"], "telegram_not_linked");

    // A wrong password links nothing.
    let wrong = connect(
        &app,
        &init_data(501, "Ann", now()),
        "ann@example.org",
        "not the password",
        false,
    )
    .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    let linked: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT user_id FROM telegram_accounts WHERE telegram_user_id = 501")
            .fetch_optional(&db)
            .await
            .expect("read");
    assert_eq!(linked, Some(None));
    // Forged launch data: nothing is checked further.
    let forged = init_data(501, "Ann", now()).replace("Ann", "Eve");
    let forged = connect(
        &app,
        &forged,
        "ann@example.org",
        "correct horse battery",
        false,
    )
    .await;
    assert_eq!(forged.status, 401, "{}", forged.body);

    // The right password: linked, and a Mini App session in the same answer.
    let ann = connect(
        &app,
        &init_data(501, "Ann", now()),
        "ann@example.org",
        "correct horse battery",
        false,
    )
    .await;
    assert_eq!(ann.status, 200, "{}", ann.body);
    let token = ann.json()["token"].as_str().expect("token").to_owned();
    let me = call(&app, "/api/auth/me", "", &header(&token)).await;
    assert_eq!(me.json()["email"], "ann@example.org");
    let owner = user_id(&db, "ann@example.org").await;
    let linked: Option<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM telegram_accounts WHERE telegram_user_id = 501")
            .fetch_one(&db)
            .await
            .expect("read");
    assert_eq!(linked, Some(owner));
    // From now on plain sign-in works.
    mini_session(&app, 501).await;

    // Another Telegram user cannot take Ann's account, even with her password.
    let taken = connect(
        &app,
        &init_data(502, "Bob", now()),
        "ann@example.org",
        "correct horse battery",
        false,
    )
    .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    // Creating an account links it at once.
    let bob = connect(
        &app,
        &init_data(502, "Bob", now()),
        "bob@example.org",
        "correct horse battery",
        true,
    )
    .await;
    assert_eq!(bob.status, 200, "{}", bob.body);
    assert_eq!(bob.json()["user"]["email"], "bob@example.org");
    let short = connect(
        &app,
        &init_data(503, "Cy", now()),
        "cy@example.org",
        "short",
        true,
    )
    .await;
    assert_eq!(short.status, 400);
    assert_eq!(short.json()["fields"][0]["field"], "password");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn overview_language_and_a_one_time_export_of_everything(db: sqlx::PgPool) {
    let app = spawn_app_with(db.clone(), crate::bot::bot_settings()).await;
    let _workers = Workers::start(&app).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;
    link_telegram(&db, owner, 601, "ru").await;
    let pdf = testkit::text_pdf(&[INVOICE]);
    let hostile = b"plain notes\n".to_vec();
    upload(
        &app,
        &cookie,
        &[("invoice.pdf", &pdf), ("../../etc/notes.txt", &hostile)],
    )
    .await;
    finished(&app, &cookie, 2).await;
    let token = mini_session(&app, 601).await;

    let overview = call(&app, "/api/account/overview", "", &header(&token)).await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    let overview = overview.json();
    assert_eq!(overview["email"], "ann@example.org");
    assert_eq!(overview["documents"], 2);
    assert_eq!(overview["processed"], 2);
    assert_eq!(overview["pending"], 0);
    assert_eq!(
        overview["storage_bytes"],
        (pdf.len() + hostile.len()) as i64
    );
    assert_eq!(overview["language"], Value::Null);
    assert_eq!(overview["telegram_language"], "ru");
    assert_eq!(overview["telegram"]["first_name"], "Ann");

    // The language: chosen, then back to Telegram's; anything else is refused.
    let set = call(
        &app,
        "/api/account/language/set",
        &form(&[("language", "en")]),
        &header(&token),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let stored: Option<String> = sqlx::query_scalar("SELECT language FROM users WHERE id = $1")
        .bind(owner)
        .fetch_one(&db)
        .await
        .expect("read");
    assert_eq!(stored.as_deref(), Some("en"));
    let bad = call(
        &app,
        "/api/account/language/set",
        &form(&[("language", "de")]),
        &header(&token),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // Export: a link that works once.
    let link = call(&app, "/api/account/export", "", &header(&token)).await;
    assert_eq!(link.status, 200, "{}", link.body);
    let url = link.json()["url"].as_str().expect("url").to_owned();
    let path = url.strip_prefix(ORIGIN).expect("on our origin").to_owned();
    let response = app
        .request(
            http::Request::get(path.as_str())
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip");
    let mut metadata = String::new();
    zip.by_name("metadata.json")
        .expect("metadata.json")
        .read_to_string(&mut metadata)
        .expect("read");
    let metadata: Value = serde_json::from_str(&metadata).expect("json");
    assert_eq!(metadata["account"]["email"], "ann@example.org");
    assert_eq!(metadata["telegram"]["telegram_user_id"], 601);
    assert_eq!(metadata["documents"].as_array().map(Vec::len), Some(2));
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| {
            zip.by_index(i)
                .expect("entry")
                .name()
                .expect("a name")
                .to_string()
        })
        .collect();
    names.sort();
    assert!(names.iter().all(|n| !n.contains("..")), "{names:?}");
    for document in metadata["documents"].as_array().expect("documents") {
        let file = document["files"][0].as_str().expect("a file path");
        let mut content = Vec::new();
        zip.by_name(file)
            .expect("in the zip")
            .read_to_end(&mut content)
            .expect("read");
        let expected: &[u8] = if document["file_name"] == "invoice.pdf" {
            &pdf
        } else {
            &hostile
        };
        assert_eq!(content, expected, "{file}");
    }
    let again = app
        .request(
            http::Request::get(path.as_str())
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(again.status(), 410, "single use");
    let guessed = app
        .request(
            http::Request::get(format!("/account/export/{}", "A".repeat(43)))
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(guessed.status(), 410);
    // No session, no link.
    let anonymous = call(&app, "/api/account/export", "", &[("origin", ORIGIN)]).await;
    assert_eq!(anonymous.status, 401);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn deleting_an_account_removes_its_rows_files_vectors_and_answers_only(db: sqlx::PgPool) {
    let app = spawn_app_with(db.clone(), crate::bot::bot_settings()).await;
    let _workers = Workers::start(&app).await;
    let ann = sign_up(&app, "ann@example.org").await;
    let bob = sign_up(&app, "bob@example.org").await;
    let ann_id = user_id(&db, "ann@example.org").await;
    let bob_id = user_id(&db, "bob@example.org").await;
    link_telegram(&db, ann_id, 701, "en").await;
    upload(
        &app,
        &ann,
        &[("invoice.pdf", &testkit::text_pdf(&[INVOICE]))],
    )
    .await;
    upload(
        &app,
        &bob,
        &[(
            "bob.pdf",
            &testkit::text_pdf(&["Bob's lease contract, rent 900 EUR"]),
        )],
    )
    .await;
    finished(&app, &ann, 1).await;
    finished(&app, &bob, 1).await;
    // A cached answer of Ann's.
    let asked = crate::rag::ask(&app, &ann, "What is the IBAN?").await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let answers = app
        .state
        .jetstream
        .get_key_value(app.state.subjects.answers_bucket())
        .await
        .expect("the answer cache");
    let cached = |prefix: String| {
        let answers = answers.clone();
        async move {
            use futures::StreamExt;
            let keys: Vec<String> = answers
                .keys()
                .await
                .expect("keys")
                .filter_map(|k| async move { k.ok() })
                .collect()
                .await;
            keys.into_iter().filter(|k| k.starts_with(&prefix)).count()
        }
    };
    assert_eq!(cached(ann_id.to_string()).await, 1);
    let token = mini_session(&app, 701).await;

    // Not without typing the email.
    let refused = call(
        &app,
        "/api/account/delete",
        &form(&[("confirm_email", "bob@example.org")]),
        &header(&token),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["fields"][0]["field"], "confirm_email");
    let count = |sql: &'static str, user: Uuid| {
        let db = db.clone();
        async move {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(user)
                .fetch_one(&db)
                .await
                .expect("count");
            n
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM documents WHERE user_id = $1", ann_id).await,
        1
    );

    let deleted = call(
        &app,
        "/api/account/delete",
        &form(&[("confirm_email", " ANN@example.org ")]),
        &header(&token),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    for sql in [
        "SELECT count(*) FROM users WHERE id = $1",
        "SELECT count(*) FROM documents WHERE user_id = $1",
        "SELECT count(*) FROM chunks WHERE user_id = $1",
        "SELECT count(*) FROM sessions WHERE user_id = $1",
        "SELECT count(*) FROM telegram_accounts WHERE user_id = $1",
    ] {
        assert_eq!(count(sql, ann_id).await, 0, "{sql}");
    }
    let telegram_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM telegram_accounts WHERE telegram_user_id = 701")
            .fetch_one(&db)
            .await
            .expect("count");
    assert_eq!(telegram_rows, 0);
    let objects = app.state.settings.data_dir.join("objects");
    let prefix = format!("{}-{ann_id}", app.state.settings.env);
    assert_eq!(
        files_under(&objects.join(&prefix)),
        0,
        "no stored file of Ann's is left"
    );
    assert_eq!(cached(ann_id.to_string()).await, 0, "cached answers purged");
    // The session is gone with the account.
    let me = call(&app, "/api/auth/me", "", &header(&token)).await;
    assert_eq!(me.json(), Value::Null);
    // Bob keeps everything.
    assert_eq!(
        count("SELECT count(*) FROM documents WHERE user_id = $1", bob_id).await,
        1
    );
    assert!(count("SELECT count(*) FROM chunks WHERE user_id = $1", bob_id).await > 0);
    let bob_prefix = format!("{}-{bob_id}", app.state.settings.env);
    assert_eq!(files_under(&objects.join(bob_prefix)), 1);
    let bob_asks = crate::rag::ask(&app, &bob, "What is the rent?").await;
    assert!(
        bob_asks.json()["found"].as_bool().unwrap_or(false),
        "{}",
        bob_asks.body
    );
    // The email is free again.
    sign_up(&app, "ann@example.org").await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn send_to_chat_delivers_the_file_through_the_bot_and_says_when_no_bot_answers(
    db: sqlx::PgPool,
) {
    use crate::bot::{Emulator, RunningBot, serve_app};
    use crate::documents::bot_with_nats;

    let (app, api_url) = serve_app(db.clone()).await;
    let _workers = Workers::start(&app).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let owner = user_id(&db, "ann@example.org").await;
    link_telegram(&db, owner, 801, "en").await;
    let pdf = testkit::text_pdf(&[INVOICE]);
    upload(&app, &cookie, &[("invoice.pdf", &pdf)]).await;
    let documents = finished(&app, &cookie, 1).await;
    let id = documents[0]["id"].as_str().expect("id").to_owned();
    let token = mini_session(&app, 801).await;
    let send = |id: String| {
        let app = &app;
        let token = token.clone();
        async move {
            call_json(
                app,
                "/api/documents/send-to-chat",
                &json!({ "id": id }),
                &header(&token),
            )
            .await
        }
    };

    // No bot is listening: a clear "try again", not a silent success.
    let nobody = send(id.clone()).await;
    assert_eq!(nobody.status, 503, "{}", nobody.body);
    assert_eq!(nobody.json()["code"], "unavailable");

    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let running = RunningBot::start(bot_with_nats(&app, &emulator, &api_url));
    // The bot subscribes as it starts; ask until it answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = send(id.clone()).await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(
            std::time::Instant::now() < deadline,
            "the bot never took the request"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = crate::rag::wait_documents(&emulator, 801, 1).await;
    let document = &sent[0]["document"];
    assert_eq!(document["file_name"], "invoice.pdf");
    let file_id = document["file_id"].as_str().expect("file id");
    assert_eq!(crate::rag::emulator_file(&emulator, file_id).await, pdf);

    // Someone else's document, or none: not found, nothing sent.
    let foreign = send(Uuid::new_v4().to_string()).await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    running.stop().await;
}
