//! PostgreSQL going away under a running system: the server says `unavailable` (not an
//! incident), and the bot repeats what is safe to repeat, so nothing a person sent is lost or
//! doubled. The database sits behind a TCP proxy the test cuts at the moment a chosen
//! statement passes (the SQL text travels in the clear in the protocol's Parse message).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgPoolOptions, PgSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::bot::{Emulator, RunningBot, bot_config, serve_app_with_settings};
use crate::documents::{chat_until, link_telegram, telegram_sends, user_id};
use crate::helpers::{ORIGIN, call_json, eventually, sign_up};

/// A proxy in front of PostgreSQL. `cut_at(marker)` closes every connection through it and
/// arms a cut: when a statement containing `marker` is about to pass, every connection is
/// closed and new ones are refused (accepted and closed at once) until `restore`.
struct DbProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: (String, u16),
    down: AtomicBool,
    refused: AtomicU64,
    cuts: AtomicU64,
    marker: std::sync::Mutex<Option<Vec<u8>>>,
    /// Bumped to close every live connection.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn close_all(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether `bytes` (from the client) hold the armed marker; disarms it if so.
    fn trips(&self, bytes: &[u8]) -> bool {
        let Ok(mut marker) = self.marker.lock() else {
            return false;
        };
        let hit = marker
            .as_deref()
            .is_some_and(|m| bytes.windows(m.len()).any(|w| w == m));
        if hit {
            *marker = None;
        }
        hit
    }
}

impl DbProxy {
    async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            upstream,
            down: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            marker: std::sync::Mutex::new(None),
            generation: tokio::sync::watch::Sender::new(0),
        });
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if shared.down.load(Ordering::SeqCst) {
                        shared.refused.fetch_add(1, Ordering::SeqCst);
                        drop(client);
                        continue;
                    }
                    tokio::spawn(relay(client, shared.clone()));
                }
            }
        });
        Self {
            port,
            shared,
            accept,
        }
    }

    fn cut_at(&self, marker: &str) {
        if let Ok(mut armed) = self.shared.marker.lock() {
            *armed = Some(marker.as_bytes().to_vec());
        }
        // Statements are prepared once per connection: fresh connections send every one's text.
        self.shared.close_all();
    }

    fn restore(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.close_all();
    }
}

async fn relay(mut client: TcpStream, shared: Arc<Shared>) {
    let Ok(mut server) = TcpStream::connect((shared.upstream.0.as_str(), shared.upstream.1)).await
    else {
        return;
    };
    let mut closed = shared.generation.subscribe();
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = client_read.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            if shared.trips(&buffer[..n]) {
                // The database "goes away" just before this statement reaches it.
                shared.down.store(true, Ordering::SeqCst);
                shared.cuts.fetch_add(1, Ordering::SeqCst);
                shared.close_all();
                return;
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
        _ = closed.changed() => {}
    }
}

async fn all_updates_done(db: &sqlx::PgPool) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM telegram_updates WHERE done_at IS NULL")
        .fetch_one(db)
        .await
        .expect("count unfinished updates")
        == 0
}

/// Waits until every update is finished; the attempts each took.
async fn finished_attempts(db: &sqlx::PgPool) -> Vec<i32> {
    eventually("the updates finished", Duration::from_secs(60), || {
        all_updates_done(db)
    })
    .await;
    sqlx::query_scalar("SELECT attempts FROM telegram_updates")
        .fetch_all(db)
        .await
        .expect("attempts")
}

/// The server behind the proxy, the emulator and a bot (as `configure` leaves its
/// configuration), and a linked account; the session cookie.
struct Outage {
    proxy: DbProxy,
    app: crate::helpers::TestApp,
    api_url: String,
    emulator: Emulator,
    bot: RunningBot,
    cookie: String,
    owner: uuid::Uuid,
}

impl Outage {
    async fn start(db: &sqlx::PgPool, chat: i64, configure: impl FnOnce(&mut bot::Config)) -> Self {
        let options = db.connect_options();
        let proxy = DbProxy::start((options.get_host().to_owned(), options.get_port())).await;
        // The server reaches PostgreSQL only through the proxy; the test reads it directly.
        let through_proxy = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(
                (*options)
                    .clone()
                    .port(proxy.port)
                    .host("127.0.0.1")
                    // In the clear, so the proxy can see the statements go by.
                    .ssl_mode(PgSslMode::Disable),
            )
            .await
            .expect("connect through the proxy");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (app, api_url) =
            serve_app_with_settings(through_proxy, listener, crate::bot::bot_settings()).await;
        let emulator = Emulator::start(tgemu::Limits::default()).await;
        let mut config = bot_config(&emulator, &api_url, (30, 30));
        configure(&mut config);
        let bot = RunningBot::start(config);
        let email = format!("outage-{chat}@example.org");
        let cookie = sign_up(&app, &email).await;
        let owner = user_id(db, &email).await;
        link_telegram(db, owner, chat, "en").await;
        Self {
            proxy,
            app,
            api_url,
            emulator,
            bot,
            cookie,
            owner,
        }
    }
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn files_sent_while_the_database_goes_away_are_each_uploaded_once(db: sqlx::PgPool) {
    let Outage {
        proxy,
        app,
        emulator,
        bot: running,
        cookie,
        owner,
        ..
    } = Outage::start(&db, 8301, |_| {}).await;

    // Where the database goes away: in the middle of the upload's transaction; as the bot
    // marks the update handled; and after the upload committed, as its receipt is read.
    let cuts = [
        ("a.pdf", "INSERT INTO document_files"),
        ("b.pdf", "UPDATE telegram_updates SET done_at"),
        ("c.pdf", "d.user_id = $1 AND d.id = $2"),
    ];
    for (n, (name, marker)) in cuts.iter().enumerate() {
        let cut = u64::try_from(n).expect("small") + 1;
        proxy.cut_at(marker);
        let pdf = testkit::text_pdf(&[&format!("Outage test file {name}, number {cut}.")]);
        telegram_sends(&emulator, 8301, "documents", name, &pdf, None).await;
        eventually(
            &format!("the cut at {marker:?}"),
            Duration::from_secs(30),
            || async { proxy.cuts() == cut },
        )
        .await;
        // While it is down, the server says so, and names no incident.
        let refused_before = proxy.refused();
        let listed = call_json(
            &app,
            "/api/documents/list",
            &serde_json::json!({}),
            &[("origin", ORIGIN), ("cookie", &cookie)],
        )
        .await;
        let (status, body) = (listed.status, listed.body);
        assert!(proxy.is_down(), "nothing restored the database yet");
        assert_eq!(status, 503, "{body}");
        let error: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(error["code"], "unavailable", "{body}");
        assert!(proxy.refused() > refused_before, "the server did try");
        // The bot keeps trying (each attempt refused) until the database is back.
        eventually(
            "the bot's attempts while the database is down",
            Duration::from_secs(30),
            || async { proxy.refused() >= refused_before + 3 },
        )
        .await;
        proxy.restore();
        let uploaded = format!("✅ Uploaded {name}, processing…");
        chat_until(&emulator, 8301, &uploaded, |texts| {
            texts.contains(&uploaded)
        })
        .await;
        eventually(
            "every update marked handled",
            Duration::from_secs(30),
            || all_updates_done(&db),
        )
        .await;
    }
    running.stop().await;

    let texts = chat_until(&emulator, 8301, "the chat", |_| true).await;
    assert_eq!(
        texts,
        vec![
            "✅ Uploaded a.pdf, processing…",
            "✅ Uploaded b.pdf, processing…",
            "✅ Uploaded c.pdf, processing…",
        ],
        "one status message per file, each edited to its outcome, nothing else"
    );
    let stored: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT file_name, source_key FROM documents WHERE user_id = $1 ORDER BY file_name",
    )
    .bind(owner)
    .fetch_all(&db)
    .await
    .expect("documents");
    assert_eq!(
        stored
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        vec!["a.pdf", "b.pdf", "c.pdf"],
        "each file once"
    );
    assert!(stored.iter().all(|(_, key)| key.is_some()), "{stored:?}");
    let files: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM document_files f JOIN documents d ON d.id = f.document_id
          WHERE d.user_id = $1",
    )
    .bind(owner)
    .fetch_one(&db)
    .await
    .expect("files");
    assert_eq!(files, 3);
    assert_eq!(
        crate::documents::stored_files(&app).len(),
        3,
        "the interrupted upload's first copy was removed"
    );
    let handled: i64 = sqlx::query_scalar("SELECT count(*) FROM telegram_updates")
        .fetch_one(&db)
        .await
        .expect("updates");
    assert_eq!(handled, 3);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn an_update_whose_done_mark_was_lost_is_fetched_and_claimed_again(db: sqlx::PgPool) {
    // The bot gives up on the API after a second: longer than that, the update's done mark
    // cannot be recorded.
    let outage = Outage::start(&db, 8302, |config| {
        config.api_retry_for = Duration::from_secs(1);
    })
    .await;
    let Outage {
        proxy, emulator, ..
    } = &outage;
    proxy.cut_at("UPDATE telegram_updates SET done_at");
    let pdf = testkit::text_pdf(&["Outage test file d.pdf, its done mark lost."]);
    telegram_sends(emulator, 8302, "documents", "d.pdf", &pdf, None).await;
    eventually(
        "the cut at the done mark",
        Duration::from_secs(30),
        || async { proxy.cuts() == 1 },
    )
    .await;
    // Polling again means the batch is over: the bot gave up marking the update done.
    let polls = || async {
        emulator.get("/control/stats").await["polls"]
            .as_u64()
            .unwrap_or(0)
    };
    let polls_at_cut = polls().await;
    eventually("the bot polling again", Duration::from_secs(30), || async {
        polls().await > polls_at_cut
    })
    .await;
    let unfinished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM telegram_updates WHERE done_at IS NULL")
            .fetch_one(&db)
            .await
            .expect("count");
    assert_eq!(unfinished, 1, "the done mark never reached the database");
    proxy.restore();
    // Not confirmed to Telegram: it comes again, is claimed again and finished.
    let attempts = finished_attempts(&db).await;
    assert!(
        matches!(attempts.as_slice(), [n] if *n >= 2),
        "handled again: {attempts:?}"
    );
    let texts = chat_until(emulator, 8302, "the chat", |_| true).await;
    assert_eq!(
        texts,
        vec!["✅ Uploaded d.pdf, processing…"],
        "the repeat edited the first status message and got the first receipt"
    );
    let documents: i64 = sqlx::query_scalar("SELECT count(*) FROM documents WHERE user_id = $1")
        .bind(outage.owner)
        .fetch_one(&db)
        .await
        .expect("documents");
    assert_eq!(documents, 1);
    outage.bot.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_status_message_the_api_never_recorded_is_edited_after_a_crash_not_sent_again(
    db: sqlx::PgPool,
) {
    // The bot sends its status message, then cannot record it (the database is away) and is
    // killed while it keeps trying. Its successor on the same host finds the message in the
    // journal and edits it: one message in the chat, no stale "📤 Uploading".
    let journal = tempfile::tempdir().expect("tempdir");
    let journal_dir = journal.path().to_owned();
    let Outage {
        proxy,
        emulator,
        api_url,
        bot: first,
        ..
    } = Outage::start(&db, 8303, |config| {
        config.journal_dir = Some(journal_dir);
    })
    .await;
    proxy.cut_at("UPDATE telegram_updates SET reply_message_id");
    let pdf = testkit::text_pdf(&["Outage test file e.pdf, its status message not recorded."]);
    telegram_sends(&emulator, 8303, "documents", "e.pdf", &pdf, None).await;
    eventually(
        "the cut as the status message is recorded",
        Duration::from_secs(30),
        || async { proxy.cuts() == 1 },
    )
    .await;
    let texts = chat_until(&emulator, 8303, "the status message", |t| !t.is_empty()).await;
    assert_eq!(texts, vec!["📤 Uploading e.pdf…"]);
    // kill -9: the process is gone mid-retry, nothing of it runs on.
    first.kill();
    proxy.restore();
    let mut config = bot_config(&emulator, &api_url, (30, 30));
    config.journal_dir = Some(journal.path().to_owned());
    let successor = RunningBot::start(config);
    let attempts = finished_attempts(&db).await;
    assert_eq!(attempts, vec![2], "taken over by the successor");
    let texts = chat_until(&emulator, 8303, "the upload's answer", |t| {
        t.iter().any(|t| t.starts_with("✅"))
    })
    .await;
    assert_eq!(
        texts,
        vec!["✅ Uploaded e.pdf, processing…"],
        "the first status message was edited, none sent again"
    );
    // The API has the record now, and the journal forgot it.
    let recorded: Option<i32> = sqlx::query_scalar("SELECT reply_message_id FROM telegram_updates")
        .fetch_one(&db)
        .await
        .expect("reply");
    assert!(recorded.is_some(), "recorded by the successor");
    let left = testkit::files_under(journal.path());
    assert!(
        left.is_empty(),
        "the journal is empty once the API has the record: {left:?}"
    );
    successor.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_notification_sent_while_the_api_could_not_record_it_is_not_sent_again_after_a_crash(
    db: sqlx::PgPool,
) {
    use crate::documents::{Workers, bot_with_nats, upload};

    // The bot sends a "processed" notification, cannot mark it sent (the database is away) and
    // is killed while it keeps trying. The stream delivers the notification again, its claim
    // is taken again, and the successor on the same host finds it in the journal: it marks it
    // sent and acknowledges it without a second message.
    let Outage {
        proxy,
        app,
        api_url,
        emulator,
        bot: without_nats,
        cookie,
        owner,
    } = Outage::start(&db, 8304, |_| {}).await;
    without_nats.stop().await;
    let _workers = Workers::start(&app).await;
    let journal = tempfile::tempdir().expect("tempdir");
    let mut config = bot_with_nats(&app, &emulator, &api_url);
    config.journal_dir = Some(journal.path().to_owned());
    let first = RunningBot::start(config.clone());

    proxy.cut_at("UPDATE notification_claims SET done_at");
    let pdf = testkit::text_pdf(&["Dear Ann,\nthe notification test letter.\nSincerely, Bob"]);
    upload(&app, &cookie, &[("n.pdf", &pdf)]).await;
    let announced = |texts: &[String]| {
        texts
            .iter()
            .filter(|t| t.starts_with("✅ n.pdf processed"))
            .count()
    };
    chat_until(&emulator, 8304, "the notification", |t| announced(t) == 1).await;
    eventually(
        "the cut as it is marked sent",
        Duration::from_secs(30),
        || async { proxy.cuts() == 1 },
    )
    .await;
    first.kill();
    proxy.restore();
    let successor = RunningBot::start(config);
    // Redelivered once the stream's acknowledgement deadline (30 s) passed.
    let claims = || async {
        sqlx::query_as::<_, (i32, bool)>(
            "SELECT attempts, done_at IS NOT NULL FROM notification_claims",
        )
        .fetch_all(&db)
        .await
        .expect("claims")
    };
    eventually("the claim finished", Duration::from_secs(90), || async {
        matches!(claims().await.as_slice(), [(_, true)])
    })
    .await;
    assert_eq!(
        claims().await,
        vec![(2, true)],
        "claimed again by the successor"
    );
    let texts = chat_until(&emulator, 8304, "the chat", |_| true).await;
    assert_eq!(announced(&texts), 1, "announced once: {texts:#?}");
    let left = testkit::files_under(journal.path());
    assert!(left.is_empty(), "the journal forgot it: {left:?}");
    let documents: i64 = sqlx::query_scalar("SELECT count(*) FROM documents WHERE user_id = $1")
        .bind(owner)
        .fetch_one(&db)
        .await
        .expect("documents");
    assert_eq!(documents, 1);
    successor.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_bot_started_while_nats_is_away_waits_for_it_instead_of_exiting(db: sqlx::PgPool) {
    use crate::helpers::{DeadPort, OwnNats};

    let (_app, api_url) = crate::bot::serve_app(db.clone()).await;
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let dead = DeadPort::start().await;
    let port = dead.port;
    let mut config = bot_config(&emulator, &api_url, (30, 30));
    config.nats = Some(bot::config::Nats {
        url: format!("nats://127.0.0.1:{port}"),
        env: "startwait".into(),
        lease_ttl: Duration::from_secs(10),
        replicas: 1,
    });
    let running = RunningBot::start(config);
    eventually(
        "the bot trying NATS again",
        Duration::from_secs(20),
        || async { dead.attempts() >= 2 },
    )
    .await;
    assert!(
        !running.is_finished(),
        "the bot waits for NATS, it does not exit"
    );
    emulator.say(8305, "/help", "en").await;
    let _nats = OwnNats::on_port(dead.open().await);
    // NATS is there: the bot carries on, polls and answers.
    let sent = emulator.wait_for(8305, 1).await;
    assert!(
        crate::bot::text(&sent[0]).contains("/docs"),
        "{}",
        crate::bot::text(&sent[0])
    );
    running.stop().await;
}
