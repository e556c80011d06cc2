use std::time::Duration;

use crate::helpers::{
    ORIGIN, OwnNats, call, eventually, spawn_app, spawn_app_with, split, test_settings,
};

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn healthz_answers_ok(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    assert_eq!(app.get("/healthz").await, (200, "ok".to_owned()));
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn readyz_is_200_with_postgres_and_nats_up(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["database"], true);
    assert_eq!(report["nats"], true);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn readyz_is_503_while_nats_is_down_and_recovers(db: sqlx::PgPool) {
    let mut nats = OwnNats::start();
    let settings = app::config::Settings {
        nats_url: nats.url(),
        ..test_settings()
    };
    let app = spawn_app_with(db, settings).await;
    assert_eq!(app.get("/readyz").await.0, 200);

    nats.kill();
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["nats"], false);
    assert_eq!(report["database"], true);

    nats.restart();
    eventually("readyz back to 200", Duration::from_secs(20), || async {
        app.get("/readyz").await.0 == 200
    })
    .await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn readyz_is_503_when_the_database_is_gone(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    db.close().await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["database"], false);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn the_status_server_function_round_trips(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let (status, body) = app.post_form("/api/system/status", "").await;
    assert_eq!(status, 200, "{body}");
    let report: app::system::StatusReport = serde_json::from_str(&body).expect("json");
    assert!(report.ready());
    assert_eq!(report.environment, app.state.settings.env);
    assert!(report.nats_server_version.is_some());
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn pages_render_on_the_server_with_hydration_scripts(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let (status, html) = app.get("/").await;
    assert_eq!(status, 200);
    assert!(html.contains("Your papers, one message away"));
    assert!(html.contains("/pkg/dossier.js"), "hydration script missing");
    let (status, html) = app.get("/no/such/page").await;
    assert_eq!(status, 404);
    assert!(html.contains("Page not found"));
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn metrics_count_requests_by_route_template(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let before = requests_for(&app.operator_get("/metrics").await.1, "/healthz");
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    let (status, text) = app.operator_get("/metrics").await;
    assert_eq!(status, 200);
    // The public port serves no metrics: they are the operator's, on their own listener.
    let (public, page) = app.get("/metrics").await;
    assert_eq!(public, 404, "{page}");
    assert!(!page.contains("http_requests_total"));
    let after = requests_for(&text, "/healthz");
    // Other tests in this process may hit /healthz too, so at least our three were counted.
    assert!(after >= before + 3.0, "before {before}, after {after}");
    assert!(text.contains("http_request_duration_seconds_bucket"));
}

fn requests_for(metrics: &str, route: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("http_requests_total{")
                && line.contains(&format!("route=\"{route}\""))
                && line.contains("status=\"200\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn pages_and_answers_carry_security_headers(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let header = |response: &http::Response<axum::body::Body>, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let get = |path: &str| {
        http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("request")
    };

    let page = app.request(get("/")).await;
    let policy = header(&page, "content-security-policy").expect("a page policy");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(header(&page, "x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(
        header(&page, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(
        header(&page, "strict-transport-security").is_none(),
        "http only"
    );
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a script nonce")
        .to_owned();
    let (_, html) = split(page).await;
    // Every inline script carries the nonce (else the browser would refuse to hydrate).
    let scripts = html.matches("<script").count();
    assert!(scripts >= 1);
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "{html}"
    );
    // A fresh nonce per response.
    let again = header(&app.request(get("/")).await, "content-security-policy").expect("policy");
    assert_ne!(again, policy);

    let mini = app.request(get("/miniapp")).await;
    let policy = header(&mini, "content-security-policy").expect("a Mini App policy");
    assert!(
        policy.ends_with("frame-ancestors https://web.telegram.org https://webk.telegram.org https://webz.telegram.org"),
        "{policy}"
    );
    assert!(header(&mini, "x-frame-options").is_none());

    let reply = call(&app, "/api/auth/me", "", &[("origin", ORIGIN)]).await;
    assert_eq!(reply.status, 200);
    let api = app
        .request(
            http::Request::post("/api/auth/me")
                .header("origin", ORIGIN)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        header(&api, "content-security-policy").as_deref(),
        Some("default-src 'none'; frame-ancestors 'none'; sandbox")
    );
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn an_https_deployment_asks_browsers_to_stay_on_https(db: sqlx::PgPool) {
    let mut settings = test_settings();
    settings.public_url = "https://dossier.example".into();
    let app = spawn_app_with(db, settings).await;
    let response = app
        .request(
            http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn the_server_waits_for_nats_at_start_up_instead_of_exiting() {
    use sqlx::migrate::MigrateDatabase;

    let dead = crate::helpers::DeadPort::start().await;
    let port = dead.port;
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL"))
        .expect("DATABASE_URL is a URL");
    url.set_path(&format!(
        "startwait_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    ));
    let mut settings = test_settings();
    settings.nats_url = format!("nats://127.0.0.1:{port}");
    settings.database_url = secrecy::SecretString::from(url.to_string());
    let building = tokio::spawn(server::build_state(settings));
    eventually(
        "the server trying NATS again",
        Duration::from_secs(30),
        || async { dead.attempts() >= 2 },
    )
    .await;
    assert!(!building.is_finished(), "the server waits for NATS");
    let _nats = OwnNats::on_port(dead.open().await);
    let state = tokio::time::timeout(Duration::from_secs(30), building)
        .await
        .expect("the server carries on once NATS is there")
        .expect("join")
        .expect("the state is built");
    assert_eq!(
        state.nats.connection_state(),
        async_nats::connection::State::Connected
    );
    state.db.close().await;
    sqlx::Postgres::drop_database(url.as_str())
        .await
        .expect("drop the database");
}
