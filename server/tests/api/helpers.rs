use std::process::Stdio;
use std::time::{Duration, Instant};

use app::config::Settings;
use axum::Router;
use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The test NATS (>= 2.11), started by `make test`.
pub fn nats_url() -> String {
    std::env::var("DOSSIER_TEST_NATS_URL").expect(
        "DOSSIER_TEST_NATS_URL must point at a NATS >= 2.11 (run tests through `make test-rust`)",
    )
}

/// Settings for one test: its own environment name, so its NATS subjects, streams and buckets
/// never meet another test's.
pub fn test_settings() -> Settings {
    let env = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    Settings {
        data_dir: std::env::temp_dir().join("dossier-tests").join(&env),
        model_dir: model_dir(),
        env,
        nats_url: nats_url(),
        public_url: "http://localhost:3000".into(),
        // Tests run many calls at once on purpose; shedding has its own test.
        admission: app::config::AdmissionSettings {
            questions: 64,
            uploads: 64,
        },
        ..Settings::default()
    }
}

/// The embedding model (`make test` points `DOSSIER_MODEL_DIR` at the bootstrapped copy).
pub fn model_dir() -> std::path::PathBuf {
    std::env::var_os("DOSSIER_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/dossier/models/all-MiniLM-L6-v2")
        })
}

pub struct TestApp {
    pub router: Router,
    pub state: app::state::AppState,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Each test's local object store lives under the temp directory; leave nothing behind.
        let dir = &self.state.settings.data_dir;
        if dir.starts_with(std::env::temp_dir().join("dossier-tests")) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub async fn spawn_app(db: sqlx::PgPool) -> TestApp {
    spawn_app_with(db, test_settings()).await
}

pub async fn spawn_app_with(db: sqlx::PgPool, settings: Settings) -> TestApp {
    // Warnings from the server and the bot show up in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let nats = server::connect_nats(&settings.nats_url, "dossier-test")
        .await
        .expect("connect to the test NATS");
    let state = server::state_from_parts(settings, db, nats).expect("build the state");
    TestApp {
        router: server::router(state.clone()),
        state,
    }
}

impl TestApp {
    pub async fn request(&self, request: Request<Body>) -> Response<Body> {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible")
    }

    /// A GET on the operator's port (`/metrics`), which the public router does not serve.
    pub async fn operator_get(&self, path: &str) -> (u16, String) {
        let response = server::metrics_router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("the router is infallible");
        split(response).await
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .request(Request::get(path).body(Body::empty()).expect("request"))
            .await;
        split(response).await
    }

    pub async fn post_form(&self, path: &str, body: &str) -> (u16, String) {
        let response = self
            .request(
                Request::post(path)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("accept", "application/json")
                    .body(Body::from(body.to_owned()))
                    .expect("request"),
            )
            .await;
        split(response).await
    }
}

pub async fn split(response: Response<Body>) -> (u16, String) {
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A NATS server process of the test's own, on a free port, so the test may stop it.
pub struct OwnNats {
    child: Option<std::process::Child>,
    pub port: u16,
    store: tempfile::TempDir,
}

impl OwnNats {
    pub fn start() -> Self {
        Self::on_port(free_port())
    }

    /// A server on `port` (free, or just freed by the test).
    pub fn on_port(port: u16) -> Self {
        let store = tempfile::tempdir().expect("tempdir");
        let mut nats = Self {
            child: None,
            port,
            store,
        };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let bin = std::env::var("DOSSIER_TEST_NATS_BIN")
            .expect("DOSSIER_TEST_NATS_BIN must name a nats-server >= 2.11 binary");
        let child = std::process::Command::new(bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and waits until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port where a service will be, for now held by something that takes each connection
/// and drops it (counting them); `open` frees the port for the real service.
pub struct DeadPort {
    pub port: u16,
    attempts: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl DeadPort {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn({
            let attempts = attempts.clone();
            async move {
                while let Ok((connection, _)) = listener.accept().await {
                    attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    drop(connection);
                }
            }
        });
        Self {
            port,
            attempts,
            task,
        }
    }

    /// Connections taken and dropped so far.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops listening; the port is free.
    pub async fn open(self) -> u16 {
        self.task.abort();
        let _ = self.task.await;
        self.port
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `check` until it holds or the deadline passes (waiting on a condition, not a clock).
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Calling server functions the way a browser does.

pub const ORIGIN: &str = "http://localhost:3000";
pub const SERVICE_SECRET: &str = "bot-secret-bot-secret-bot-secret-0123";

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub cookie: Option<String>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A form-encoded server-function call (the default codec).
pub async fn call(app: &TestApp, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    send(
        app,
        path,
        "application/x-www-form-urlencoded",
        body,
        headers,
    )
    .await
}

/// A JSON server-function call (functions declared with `input = Json`).
pub async fn call_json(
    app: &TestApp,
    path: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> Reply {
    send(app, path, "application/json", &body.to_string(), headers).await
}

async fn send(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = Request::post(path)
        .header("content-type", content_type)
        .header("accept", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .request(request.body(Body::from(body.to_owned())).expect("request"))
        .await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("dossier_session="))
        .map(str::to_owned);
    let (status, body) = split(response).await;
    Reply {
        status,
        body,
        cookie,
    }
}

pub fn session_cookie(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("cookie pair")
        .to_owned()
}

pub async fn sign_up(app: &TestApp, email: &str) -> String {
    let reply = call(
        app,
        "/api/auth/sign-up",
        &form(&[("email", email), ("password", "correct horse battery")]),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    session_cookie(&reply.cookie.expect("a session cookie"))
}

pub async fn me(app: &TestApp, cookie: &str) -> Reply {
    call(
        app,
        "/api/auth/me",
        "",
        &[("origin", ORIGIN), ("cookie", cookie)],
    )
    .await
}
