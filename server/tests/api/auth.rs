use app::auth::signing::{self, SignedParts};
use axum::body::Body;
use http::Request;
use sha2::{Digest, Sha256};

use crate::helpers::*;

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn sign_up_creates_an_account_and_a_hashed_session(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    let reply = call(
        &app,
        "/api/auth/sign-up",
        &form(&[
            ("email", "Ann@Example.org"),
            ("password", "correct horse battery"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["email"], "Ann@Example.org");
    assert_eq!(
        reply.json()["is_admin"],
        true,
        "the first account administers"
    );
    let set_cookie = reply.cookie.expect("cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    let cookie = session_cookie(&set_cookie);
    let token = cookie.trim_start_matches("dossier_session=");

    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_all(&db)
        .await
        .expect("query");
    assert_eq!(
        stored,
        vec![Sha256::digest(token.as_bytes()).to_vec()],
        "only the hash is stored"
    );
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&db)
        .await
        .expect("query");
    assert!(hash.starts_with("$argon2id$"));

    let reply = me(&app, &cookie).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["email"], "Ann@Example.org");

    // A second account is not an administrator; the same email (any case) is a conflict.
    let reply = call(
        &app,
        "/api/auth/sign-up",
        &form(&[
            ("email", "bob@example.org"),
            ("password", "correct horse battery"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(reply.json()["is_admin"], false);
    let reply = call(
        &app,
        "/api/auth/sign-up",
        &form(&[
            ("email", "ANN@example.org"),
            ("password", "another password 1"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.json()["code"], "conflict");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn weak_passwords_and_bad_emails_are_refused_with_field_errors(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let reply = call(
        &app,
        "/api/auth/sign-up",
        &form(&[("email", "ann@example.org"), ("password", "short")]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["code"], "validation");
    assert_eq!(reply.json()["fields"][0]["field"], "password");
    let reply = call(
        &app,
        "/api/auth/sign-up",
        &form(&[
            ("email", "not-an-email"),
            ("password", "long enough password"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(reply.json()["fields"][0]["field"], "email");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn sign_in_sign_out_and_wrong_passwords(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    sign_up(&app, "ann@example.org").await;

    let wrong = call(
        &app,
        "/api/auth/sign-in",
        &form(&[
            ("email", "ann@example.org"),
            ("password", "not the password"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["message"], "wrong email or password");
    assert!(wrong.cookie.is_none());
    let unknown = call(
        &app,
        "/api/auth/sign-in",
        &form(&[
            ("email", "nobody@example.org"),
            ("password", "not the password"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(
        unknown.body, wrong.body,
        "unknown accounts look like wrong passwords"
    );

    let ok = call(
        &app,
        "/api/auth/sign-in",
        &form(&[
            ("email", " ANN@example.org "),
            ("password", "correct horse battery"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let cookie = session_cookie(&ok.cookie.expect("cookie"));
    assert_eq!(me(&app, &cookie).await.json()["email"], "ann@example.org");

    let out = call(
        &app,
        "/api/auth/sign-out",
        "",
        &[("origin", ORIGIN), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(out.cookie.expect("cleared cookie").contains("Max-Age=0"));
    let after = me(&app, &cookie).await;
    assert_eq!(after.status, 200);
    assert_eq!(
        after.json(),
        serde_json::Value::Null,
        "the old token no longer works"
    );
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn sessions_expire_and_slide(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    let cookie = sign_up(&app, "ann@example.org").await;

    sqlx::query("UPDATE sessions SET expires_at = now() + interval '1 minute'")
        .execute(&db)
        .await
        .expect("update");
    assert_eq!(me(&app, &cookie).await.json()["email"], "ann@example.org");
    let remaining: f64 =
        sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM expires_at - now())::float8 FROM sessions")
            .fetch_one(&db)
            .await
            .expect("query");
    assert!(
        remaining > 13.0 * 24.0 * 3600.0,
        "use slides the expiry ({remaining} s left)"
    );

    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 second'")
        .execute(&db)
        .await
        .expect("update");
    assert_eq!(me(&app, &cookie).await.json(), serde_json::Value::Null);
    assert!(
        server::sweep(&db).await.expect("sweep") >= 1,
        "the janitor removes it"
    );
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn cross_site_requests_with_a_cookie_are_rejected(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let cookie = sign_up(&app, "ann@example.org").await;

    for headers in [
        vec![
            ("origin", "https://evil.example"),
            ("cookie", cookie.as_str()),
        ],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("cookie", cookie.as_str()),
        ],
        vec![("cookie", cookie.as_str())],
    ] {
        let reply = call(&app, "/api/auth/sign-out", "", &headers).await;
        assert_eq!(reply.status, 403, "{headers:?}: {}", reply.body);
        assert_eq!(reply.json()["code"], "csrf_rejected");
    }
    // The session survived every forged sign-out.
    assert_eq!(me(&app, &cookie).await.json()["email"], "ann@example.org");
    // Same-origin by Sec-Fetch-Site alone is fine.
    let ok = call(
        &app,
        "/api/auth/me",
        "",
        &[("sec-fetch-site", "same-origin"), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(ok.json()["email"], "ann@example.org");
    // Login CSRF: signing in from another site is refused too.
    let reply = call(
        &app,
        "/api/auth/sign-in",
        &form(&[
            ("email", "ann@example.org"),
            ("password", "correct horse battery"),
        ]),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(reply.json()["code"], "csrf_rejected");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn repeated_wrong_passwords_are_rate_limited_per_account(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    sign_up(&app, "ann@example.org").await;
    let guess = form(&[
        ("email", "ann@example.org"),
        ("password", "guess guess guess"),
    ]);
    let attempt = || call(&app, "/api/auth/sign-in", &guess, &[("origin", ORIGIN)]);
    for _ in 0..app::auth::ratelimit::SIGN_IN_PER_ACCOUNT.max_hits {
        assert_eq!(attempt().await.status, 400);
    }
    let limited = attempt().await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.json()["code"], "rate_limited");
    let retry = limited.json()["retry_after_secs"]
        .as_u64()
        .expect("retry_after_secs");
    assert!((1..=600).contains(&retry), "{retry}");
    // Even the right password waits until the window passes.
    let right = call(
        &app,
        "/api/auth/sign-in",
        &form(&[
            ("email", "ann@example.org"),
            ("password", "correct horse battery"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(right.status, 429);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_client_written_forwarded_hop_does_not_choose_its_rate_limit(db: sqlx::PgPool) {
    // One proxy in front: it appends the address it saw (203.0.113.50) to whatever the client
    // sent; the client rotates the hop before it on every try.
    let mut settings = test_settings();
    settings.trusted_proxies = 1;
    let app = spawn_app_with(db, settings).await;
    let attempt = |n: u32| {
        let forwarded = format!("198.18.{}.{}, 203.0.113.50", n / 250, 1 + n % 250);
        let body = form(&[
            ("email", &format!("guess{n}@example.org")),
            ("password", "guess guess guess"),
        ]);
        let app = &app;
        async move {
            call(
                app,
                "/api/auth/sign-in",
                &body,
                &[("origin", ORIGIN), ("x-forwarded-for", &forwarded)],
            )
            .await
            .status
        }
    };
    let max = u32::try_from(app::auth::ratelimit::SIGN_IN_PER_IP.max_hits).expect("small");
    for n in 0..max {
        assert_eq!(attempt(n).await, 400, "attempt {n}");
    }
    assert_eq!(
        attempt(max).await,
        429,
        "the proxy-seen address was rate limited"
    );
}

/// Test settings with a service `bot` that may read users (and nothing else).
fn with_user_reader_bot() -> app::config::Settings {
    let mut settings = test_settings();
    settings.services.insert(
        "bot".into(),
        app::config::ServiceSettings {
            secret: SERVICE_SECRET.to_owned().into(),
            permissions: vec!["users:read".into()],
        },
    );
    settings
}

fn signed(
    path: &str,
    body: &str,
    service: &str,
    secret: &str,
    acting: &str,
    nonce: &str,
) -> Vec<(String, String)> {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = SignedParts {
        service,
        timestamp,
        nonce,
        method: "POST",
        path_and_query: path,
        acting_user: acting,
        content_type: "application/x-www-form-urlencoded",
        body_sha256: signing::body_sha256(body.as_bytes()),
    }
    .sign(secret.as_bytes());
    vec![
        (signing::HEADER_SERVICE.into(), service.into()),
        (signing::HEADER_TIMESTAMP.into(), timestamp.to_string()),
        (signing::HEADER_NONCE.into(), nonce.into()),
        (signing::HEADER_ACTING_USER.into(), acting.into()),
        (signing::HEADER_SIGNATURE.into(), signature),
    ]
}

async fn signed_call(app: &TestApp, path: &str, headers: &[(String, String)]) -> Reply {
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    call(app, path, "", &refs).await
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn signed_service_calls_act_for_linked_users_only_once_per_nonce(db: sqlx::PgPool) {
    let mut settings = with_user_reader_bot();
    settings.services.insert(
        "reporter".into(),
        app::config::ServiceSettings {
            secret: SERVICE_SECRET.to_owned().into(),
            permissions: vec!["rag:query".into()],
        },
    );
    let app = spawn_app_with(db.clone(), settings).await;
    sign_up(&app, "ann@example.org").await;
    sqlx::query(
        "INSERT INTO telegram_accounts (telegram_user_id, user_id, first_name)
         SELECT 42, id, 'Ann' FROM users",
    )
    .execute(&db)
    .await
    .expect("link");

    let headers = signed(
        "/api/auth/me",
        "",
        "bot",
        SERVICE_SECRET,
        "tg:42",
        "nonce-aaaaaaaaaaaaaaaa",
    );
    let reply = signed_call(&app, "/api/auth/me", &headers).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["email"], "ann@example.org");

    let replay = signed_call(&app, "/api/auth/me", &headers).await;
    assert_eq!(replay.status, 401, "a replayed nonce is refused");
    assert_eq!(replay.json()["code"], "unauthenticated");

    let unlinked = signed(
        "/api/auth/me",
        "",
        "bot",
        SERVICE_SECRET,
        "tg:43",
        "nonce-bbbbbbbbbbbbbbbb",
    );
    let reply = signed_call(&app, "/api/auth/me", &unlinked).await;
    assert_eq!(
        reply.json()["code"],
        "telegram_not_linked",
        "{}",
        reply.body
    );

    let unknown = signed(
        "/api/auth/me",
        "",
        "intruder",
        SERVICE_SECRET,
        "tg:42",
        "nonce-cccccccccccccccc",
    );
    assert_eq!(
        signed_call(&app, "/api/auth/me", &unknown).await.status,
        401
    );

    let no_permission = signed(
        "/api/auth/me",
        "",
        "reporter",
        SERVICE_SECRET,
        "tg:42",
        "nonce-dddddddddddddddd",
    );
    let reply = signed_call(&app, "/api/auth/me", &no_permission).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json()["code"], "forbidden");

    let wrong_path = signed(
        "/api/auth/sign-out",
        "",
        "bot",
        SERVICE_SECRET,
        "tg:42",
        "nonce-eeeeeeeeeeeeeeee",
    );
    assert_eq!(
        signed_call(&app, "/api/auth/me", &wrong_path).await.status,
        401
    );
}

/// A request body of `total` bytes, in 64 KiB chunks, that counts what the server pulled.
fn counted_body(total: usize) -> (Body, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CHUNK: usize = 64 * 1024;
    let pulled = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let chunks = (0..total.div_ceil(CHUNK)).map(move |i| {
        let n = CHUNK.min(total - i * CHUNK);
        counter.fetch_add(n, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![b'x'; n])
    });
    (Body::from_stream(futures::stream::iter(chunks)), pulled)
}

async fn send_counted(
    app: &TestApp,
    path: &str,
    headers: &[(String, String)],
    total: usize,
    declare_length: bool,
) -> (u16, String, usize) {
    let (body, pulled) = counted_body(total);
    let mut request = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if declare_length {
        request = request.header("content-length", total.to_string());
    }
    let response = app.request(request.body(body).expect("request")).await;
    let (status, body) = split(response).await;
    (
        status,
        body,
        pulled.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_signed_call_is_judged_by_its_headers_before_its_body_is_read(db: sqlx::PgPool) {
    let mut settings = with_user_reader_bot();
    settings.documents.max_upload_mb = 5;
    let app = spawn_app_with(db, settings).await;
    const BIG: usize = 32 * 1024 * 1024;

    // An unknown service, a stale timestamp, a malformed nonce: refused with nothing read.
    let unknown = signed(
        "/api/auth/me",
        "",
        "intruder",
        SERVICE_SECRET,
        "",
        "nonce-aaaaaaaaaaaaaaaa",
    );
    let mut stale = signed(
        "/api/auth/me",
        "",
        "bot",
        SERVICE_SECRET,
        "",
        "nonce-bbbbbbbbbbbbbbbb",
    );
    stale[1].1 = (time::OffsetDateTime::now_utc().unix_timestamp() - 3600).to_string();
    let mut bad_nonce = signed(
        "/api/auth/me",
        "",
        "bot",
        SERVICE_SECRET,
        "",
        "nonce-cccccccccccccccc",
    );
    bad_nonce[2].1 = "short".into();
    for (what, headers) in [
        ("unknown", &unknown),
        ("stale", &stale),
        ("nonce", &bad_nonce),
    ] {
        let (status, body, pulled) = send_counted(&app, "/api/auth/me", headers, BIG, false).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(
            pulled, 0,
            "{what}: the body was read before the headers were judged"
        );
    }

    // Well-formed headers (the signature cannot be checked before the body is in): a call
    // other than an upload is read to 1 MiB and no further.
    let fresh = signed(
        "/api/auth/me",
        "",
        "bot",
        SERVICE_SECRET,
        "",
        "nonce-dddddddddddddddd",
    );
    let (status, body, pulled) = send_counted(&app, "/api/auth/me", &fresh, BIG, false).await;
    assert_eq!(status, 400, "{body}");
    let limit = app::auth::service_calls::MAX_SIGNED_CALL_BODY;
    assert!(
        pulled <= limit + 64 * 1024,
        "read {pulled} bytes of a call limited to {limit}"
    );
    // A declared length over the limit: refused without reading.
    let (status, _, pulled) = send_counted(&app, "/api/auth/me", &fresh, BIG, true).await;
    assert_eq!(status, 400);
    assert_eq!(pulled, 0);
    // The upload route's limit is the upload size (5 MiB here), not 64 MiB.
    let upload = signed(
        app::auth::service_calls::UPLOAD_PATH,
        "",
        "bot",
        SERVICE_SECRET,
        "",
        "nonce-eeeeeeeeeeeeeeee",
    );
    let max = usize::try_from(app.state.settings.documents.max_upload_bytes()).expect("fits");
    let (status, body, pulled) = send_counted(
        &app,
        app::auth::service_calls::UPLOAD_PATH,
        &upload,
        BIG,
        false,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        pulled <= max + 128 * 1024,
        "read {pulled} of an upload limited to {max}"
    );
    // A small call with a good signature still goes through.
    let ok = signed(
        "/api/auth/me",
        "",
        "bot",
        SERVICE_SECRET,
        "tg:42",
        "nonce-ffffffffffffffff",
    );
    let reply = signed_call(&app, "/api/auth/me", &ok).await;
    assert_eq!(
        reply.json()["code"],
        "telegram_not_linked",
        "{}",
        reply.body
    );
}

const BOT_TOKEN: &str = "123456:test-token";

fn init_data(telegram_user_id: i64, auth_date: i64) -> String {
    let user = format!(
        r#"{{"id":{telegram_user_id},"first_name":"Ann","username":"ann_tg","language_code":"en"}}"#
    );
    app::auth::init_data::sign(
        &[
            ("user", &user),
            ("auth_date", &auth_date.to_string()),
            ("chat_type", "sender"),
        ],
        BOT_TOKEN,
        None,
    )
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn mini_app_sign_in_gives_a_header_session_for_linked_users(db: sqlx::PgPool) {
    let mut settings = test_settings();
    settings.telegram_bot_token = Some(BOT_TOKEN.to_owned().into());
    let app = spawn_app_with(db.clone(), settings).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // Not linked yet: a clear code the Mini App can act on, and the Telegram user is remembered.
    let reply = call(
        &app,
        "/api/auth/telegram/miniapp",
        &form(&[("init_data", &init_data(77, now))]),
        &[],
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json()["code"], "telegram_not_linked");
    let username: String =
        sqlx::query_scalar("SELECT username FROM telegram_accounts WHERE telegram_user_id = 77")
            .fetch_one(&db)
            .await
            .expect("recorded");
    assert_eq!(username, "ann_tg");

    sign_up(&app, "ann@example.org").await;
    sqlx::query("UPDATE telegram_accounts SET user_id = (SELECT id FROM users), linked_at = now()")
        .execute(&db)
        .await
        .expect("link");

    let reply = call(
        &app,
        "/api/auth/telegram/miniapp",
        &form(&[("init_data", &init_data(77, now))]),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.cookie.is_none(),
        "the Mini App session travels in a header, not a cookie"
    );
    let token = reply.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(reply.json()["expires_in_secs"], 900);
    assert_eq!(reply.json()["user"]["email"], "ann@example.org");

    // The header works with no Origin at all (a cross-site iframe cannot forge a header).
    let me = call(&app, "/api/auth/me", "", &[("x-dossier-session", &token)]).await;
    assert_eq!(me.json()["email"], "ann@example.org", "{}", me.body);

    // Stale, forged and replayed-with-changes initData are refused.
    let stale = call(
        &app,
        "/api/auth/telegram/miniapp",
        &form(&[("init_data", &init_data(77, now - 301))]),
        &[],
    )
    .await;
    assert_eq!(stale.status, 401);
    let forged = init_data(77, now).replace("ann_tg", "mallory");
    let forged = call(
        &app,
        "/api/auth/telegram/miniapp",
        &form(&[("init_data", &forged)]),
        &[],
    )
    .await;
    assert_eq!(forged.status, 401);
    assert_eq!(forged.json()["code"], "unauthenticated");

    // The session ends after its fixed lifetime, however much it is used.
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE kind = 'miniapp'",
    )
    .execute(&db)
    .await
    .expect("expire");
    let me = call(&app, "/api/auth/me", "", &[("x-dossier-session", &token)]).await;
    assert_eq!(me.json(), serde_json::Value::Null);
}
