//! Operations: the metric families of the server and the bot move when the system is used, the
//! bot's own `/metrics` and `/healthz` answer, and the administrators' live traffic view counts
//! NATS messages (and refuses everyone else).

use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::Value;

use crate::bot::{Emulator, RunningBot, bot_config, serve_app};
use crate::documents::Workers;
use crate::helpers::*;

/// The sum of every sample of `family` whose labels contain all of `labels` (`k="v"` pairs).
fn sample(metrics: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics(app: &TestApp) -> String {
    let (status, text) = app.operator_get("/metrics").await;
    assert_eq!(status, 200);
    text
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn server_functions_and_queue_depths_are_measured(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let before = metrics(&app).await;
    let calls = |text: &str| {
        sample(
            text,
            "dossier_server_fn_calls_total",
            &[("fn", "auth/sign-up"), ("result", "ok")],
        )
    };
    let refused = |text: &str| {
        sample(
            text,
            "dossier_server_fn_calls_total",
            &[("fn", "auth/sign-in"), ("result", "client_error")],
        )
    };
    sign_up(&app, "metrics@example.test").await;
    let wrong = call(
        &app,
        "/api/auth/sign-in",
        &form(&[
            ("email", "metrics@example.test"),
            ("password", "not the password"),
        ]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    // A path under /api/ that names no server function never becomes a label value.
    let junk = call(&app, "/api/no/such/function-7f3a", "", &[]).await;
    assert!(junk.status >= 400);

    let after = metrics(&app).await;
    assert!(calls(&after) >= calls(&before) + 1.0, "{after}");
    assert!(refused(&after) >= refused(&before) + 1.0);
    assert!(
        sample(
            &after,
            "dossier_server_fn_duration_seconds_count",
            &[("fn", "auth/sign-up")]
        ) >= 1.0
    );
    assert!(!after.contains("function-7f3a"));

    // Queue depth per durable consumer: the pipeline's stage consumers of this environment.
    let workers = Workers::start(&app).await;
    let recorded = server::telemetry::record_queue_depths(&app.state.jetstream)
        .await
        .expect("read the queue depths");
    assert!(recorded >= 4, "only {recorded} consumers");
    let text = metrics(&app).await;
    let stream = app.state.subjects.documents_stream();
    let gauges: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.starts_with("dossier_jetstream_consumer_pending{")
                && line.contains(&format!("stream=\"{stream}\""))
        })
        .collect();
    assert!(gauges.len() >= 4, "{gauges:?}");
    assert!(gauges.iter().all(|line| line.ends_with(" 0")), "{gauges:?}");
    drop(workers);
}

/// Reads server-sent events from `body` until one `traffic` event parses.
async fn next_traffic_event(body: &mut axum::body::Body) -> Value {
    let mut buffer = String::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            buffer.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|line| line == "event: traffic") {
                let data: String = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                return serde_json::from_str(&data).expect("json data");
            }
        }
    }
}

fn total_of(snapshot: &Value, subject: &str) -> u64 {
    snapshot["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|rate| rate["subject"] == subject)
        .and_then(|rate| rate["total"].as_u64())
        .unwrap_or(0)
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn administrators_watch_live_traffic_and_nobody_else_can(db: sqlx::PgPool) {
    let mut settings = test_settings();
    settings.admin_emails = "Ops@Example.test, other@example.test".into();
    let app = spawn_app_with(db, settings).await;
    let first = sign_up(&app, "first@example.test").await;
    let member = sign_up(&app, "member@example.test").await;
    let ops = sign_up(&app, "ops@example.test").await;
    assert_eq!(me(&app, &first).await.json()["is_admin"], true);
    assert_eq!(me(&app, &member).await.json()["is_admin"], false);
    assert_eq!(me(&app, &ops).await.json()["is_admin"], true);

    let snapshot_as = |cookie: Option<String>| {
        let app = &app;
        async move {
            let mut headers = vec![("origin", ORIGIN)];
            let cookie = cookie.unwrap_or_default();
            if !cookie.is_empty() {
                headers.push(("cookie", cookie.as_str()));
            }
            call(app, "/api/admin/traffic", "", &headers).await
        }
    };
    assert_eq!(snapshot_as(None).await.status, 401);
    let refused = snapshot_as(Some(member.clone())).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let events_as = |cookie: &str| {
        http::Request::get("/admin/traffic/events")
            .header("cookie", cookie)
            .body(axum::body::Body::empty())
            .expect("request")
    };
    assert_eq!(app.request(events_as(&member)).await.status(), 403);

    // The administrator's first look starts the counting.
    let first_look = snapshot_as(Some(ops.clone())).await;
    assert_eq!(first_look.status, 200, "{}", first_look.body);
    let env = app.state.settings.env.clone();
    let probe = format!("{env}.ops.probe");
    for _ in 0..7 {
        app.state
            .nats
            .publish(probe.clone(), "x".into())
            .await
            .expect("publish");
    }
    // Ids in subjects fold into one row.
    for _ in 0..3 {
        let id = uuid::Uuid::new_v4();
        app.state
            .nats
            .publish(format!("{env}.rag.answers.{id}"), "y".into())
            .await
            .expect("publish");
    }
    app.state.nats.flush().await.expect("flush");
    eventually("the 7 probes are counted", Duration::from_secs(10), || {
        let snapshot_as = &snapshot_as;
        let ops = ops.clone();
        let probe = probe.clone();
        async move { total_of(&snapshot_as(Some(ops)).await.json(), &probe) == 7 }
    })
    .await;
    let snapshot = snapshot_as(Some(ops.clone())).await.json();
    assert_eq!(total_of(&snapshot, &format!("{env}.rag.answers.*")), 3);
    let row = snapshot["subjects"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["subject"] == probe.as_str()))
        .cloned()
        .expect("the probe row");
    assert_eq!(row["env"], env.as_str());
    assert_eq!(row["last_minute"], 7);
    assert!(row["per_sec"].as_f64().is_some_and(|rate| rate > 0.0));
    assert!(snapshot["consumers"].is_array());

    // The live stream: a snapshot a second, and new messages show up in the next ones.
    let response = app.request(events_as(&ops)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let event = next_traffic_event(&mut body).await;
    assert_eq!(total_of(&event, &probe), 7);
    for _ in 0..5 {
        app.state
            .nats
            .publish(probe.clone(), "x".into())
            .await
            .expect("publish");
    }
    app.state.nats.flush().await.expect("flush");
    let mut seen = 7;
    for _ in 0..10 {
        seen = total_of(&next_traffic_event(&mut body).await, &probe);
        if seen == 12 {
            break;
        }
    }
    assert_eq!(seen, 12, "the stream never showed the 5 new messages");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn the_bot_serves_health_and_metrics_that_move(db: sqlx::PgPool) {
    let (_app, api_url) = serve_app(db).await;
    // The emulator allows one message a second per chat; the bot is told it may send five,
    // so Telegram (the emulator) answers some sends with 429 and the bot retries them.
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let mut config = bot_config(&emulator, &api_url, (5, 30));
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = free.local_addr().expect("addr");
    drop(free);
    config.metrics_listen = Some(addr);
    let http = reqwest::Client::new();
    let scrape = || {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()
        }
    };
    let running = RunningBot::start(config);
    eventually("the bot's /healthz", Duration::from_secs(10), || {
        let http = http.clone();
        async move {
            match http.get(format!("http://{addr}/healthz")).send().await {
                Ok(response) => response.status() == 200,
                Err(_) => false,
            }
        }
    })
    .await;
    let before = scrape().await.expect("/metrics answers");
    let commands = |text: &str| {
        sample(
            text,
            "dossier_bot_updates_total",
            &[("kind", "command"), ("result", "ok")],
        )
    };
    let sends = |text: &str| {
        sample(
            text,
            "dossier_telegram_requests_total",
            &[("method", "SendMessage"), ("result", "ok")],
        )
    };
    let limited = |text: &str| {
        sample(
            text,
            "dossier_telegram_rate_limited_total",
            &[("method", "SendMessage")],
        )
    };
    let api_calls = |text: &str| {
        sample(
            text,
            "dossier_bot_api_calls_total",
            &[("endpoint", "telegram/hello"), ("result", "ok")],
        )
    };

    for command in ["/start", "/help", "/help"] {
        emulator.say(7001, command, "en").await;
    }
    emulator.wait_for(7001, 3).await;
    let after = scrape().await.expect("/metrics answers");
    assert!(commands(&after) >= commands(&before) + 3.0, "{after}");
    assert!(sends(&after) >= sends(&before) + 3.0);
    assert!(
        limited(&after) >= limited(&before) + 1.0,
        "no 429 was counted"
    );
    assert!(api_calls(&after) >= api_calls(&before) + 1.0);
    assert!(
        sample(
            &after,
            "dossier_bot_update_duration_seconds_count",
            &[("kind", "command")]
        ) >= 3.0
    );
    assert!(
        sample(
            &after,
            "dossier_telegram_requests_total",
            &[("method", "GetUpdates"), ("result", "ok")]
        ) >= 1.0
    );
    // No chat or user id becomes a label.
    assert!(!after.contains("7001"));
    running.stop().await;
}
