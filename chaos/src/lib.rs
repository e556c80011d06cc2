//! The whole system as real processes on loopback, for fault and overload runs: a PostgreSQL
//! cluster and a NATS server of its own (so restarting them disturbs nothing else), the Bot
//! API emulator, the server and the bot, each a child this process can kill with SIGKILL,
//! stop and start again on the same ports and directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

pub const BOT_TOKEN: &str = "123456:chaos-emulator-token";

/// Where the binaries and tools are (from the environment `make faults` sets).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub server: PathBuf,
    pub bot: PathBuf,
    pub tgemu: PathBuf,
    pub nats: PathBuf,
    /// PostgreSQL's `bin` directory (initdb, postgres).
    pub pg_bin: PathBuf,
    pub model_dir: PathBuf,
}

fn env_path(name: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .with_context(|| format!("{name} is not set (run through `make faults`)"))
}

impl Binaries {
    pub fn from_env() -> anyhow::Result<Self> {
        let target = env_path("CARGO_TARGET_DIR")?.join("debug");
        Ok(Self {
            server: target.join("server"),
            bot: target.join("bot"),
            tgemu: target.join("tgemu"),
            nats: env_path("DOSSIER_TEST_NATS_BIN")?,
            pg_bin: env_path("DOSSIER_PG_BIN")?,
            model_dir: env_path("DOSSIER_MODEL_DIR")?,
        })
    }
}

/// A number from the environment, or `default`.
pub fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A free loopback port (bound once, released, then used by a child).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

/// One child process that can be killed and started again with the same command.
pub struct Proc {
    pub name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    log: PathBuf,
    child: Option<Child>,
    pub starts: u32,
}

impl Proc {
    pub fn new(name: &'static str, program: &Path, args: &[&str], log_dir: &Path) -> Self {
        Self {
            name,
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: BTreeMap::new(),
            log: log_dir.join(format!("{name}.log")),
            child: None,
            starts: 0,
        }
    }

    pub fn env(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(&self.env)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL: no handler runs, nothing is flushed or confirmed.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill().ok();
            child.wait().await?;
        }
        Ok(())
    }

    /// A signal by name (`INT`, `TERM`), then waits for the exit.
    pub async fn signal_and_wait(&mut self, signal: &str) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let status = Command::new("kill")
                    .args([&format!("-{signal}"), &pid.to_string()])
                    .status()
                    .await?;
                if !status.success() {
                    bail!("kill -{signal} {pid} failed");
                }
            }
            match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(exit) => {
                    exit?;
                }
                Err(_) => {
                    child.start_kill().ok();
                    child.wait().await?;
                    bail!("{} ignored SIGINT/SIGTERM for 30 s", self.name);
                }
            }
        }
        Ok(())
    }

    /// Fails when the process has exited on its own.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "{} exited on its own ({status}); see {}",
                self.name,
                self.log.display()
            );
        }
        Ok(())
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Resident memory in bytes (Linux `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// Polls `ready` every 100 ms until it holds or `within` has passed.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if ready().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn answers(http: &reqwest::Client, url: &str) -> bool {
    http.get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The ports and directories of one run.
pub struct Layout {
    pub dir: PathBuf,
    pub pg_port: u16,
    pub nats_port: u16,
    pub server_port: u16,
    pub tgemu_port: u16,
    pub env_name: String,
}

impl Layout {
    pub fn new(dir: PathBuf, env_name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            pg_port: free_port()?,
            nats_port: free_port()?,
            server_port: free_port()?,
            tgemu_port: free_port()?,
            env_name: env_name.to_owned(),
        })
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/dossier", self.pg_port)
    }

    pub fn server_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server_port)
    }

    pub fn tgemu_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.tgemu_port)
    }

    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats_port)
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.dir.join("data").join("objects")
    }
}

/// The five processes.
pub struct Stack {
    pub layout: Layout,
    pub postgres: Proc,
    pub nats: Proc,
    pub tgemu: Proc,
    pub server: Proc,
    pub bot: Proc,
    pub http: reqwest::Client,
}

impl Stack {
    /// A run's stack: binaries from the environment, a fresh directory (`dir_var`, else
    /// `dossier-<name>-<pid>` in the temporary directory), a random service secret.
    pub async fn start_run(name: &str, dir_var: &str) -> anyhow::Result<Self> {
        let bins = Binaries::from_env()?;
        let dir = std::env::var_os(dir_var)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::temp_dir().join(format!("dossier-{name}-{}", std::process::id()))
            });
        let _ = std::fs::remove_dir_all(&dir);
        let layout = Layout::new(dir, name)?;
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Self::start(&bins, layout, &secret).await
    }

    /// Creates the PostgreSQL cluster and starts everything; returns once the server is ready
    /// and the bot has registered its commands with the emulator.
    pub async fn start(
        bins: &Binaries,
        layout: Layout,
        service_secret: &str,
    ) -> anyhow::Result<Self> {
        let logs = layout.dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let pg_data = layout.dir.join("pg");
        std::fs::create_dir_all(&pg_data)?;
        // PostgreSQL refuses to run as root: then it runs as the `postgres` user (setpriv
        // execs, so the child is PostgreSQL itself and gets the signals).
        let as_postgres = is_root().await;
        if as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:postgres", &pg_data.to_string_lossy()])
                .status()
                .await?;
            if !chown.success() {
                bail!("cannot give {} to the postgres user", pg_data.display());
            }
        }
        let pg_data = pg_data.to_string_lossy().into_owned();
        let (initdb_program, mut initdb_args) =
            privileges(as_postgres, &bins.pg_bin.join("initdb"));
        initdb_args.extend(
            [
                "-D",
                &pg_data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
            .map(str::to_owned),
        );
        let initdb = Command::new(initdb_program)
            .args(&initdb_args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(logs.join("initdb.log"))?)
            .status()
            .await
            .context("cannot run initdb")?;
        if !initdb.success() {
            bail!("initdb failed; see {}", logs.join("initdb.log").display());
        }
        let pg_port = layout.pg_port.to_string();
        let (postgres_program, mut postgres_args) =
            privileges(as_postgres, &bins.pg_bin.join("postgres"));
        postgres_args.extend(
            [
                "-D",
                &pg_data,
                "-p",
                &pg_port,
                "-k",
                &pg_data,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ]
            .map(str::to_owned),
        );
        let postgres_args: Vec<&str> = postgres_args.iter().map(String::as_str).collect();
        let postgres = Proc::new("postgres", &postgres_program, &postgres_args, &logs);
        let nats_port = layout.nats_port.to_string();
        let nats_store = layout.dir.join("nats").to_string_lossy().into_owned();
        let nats = Proc::new(
            "nats",
            &bins.nats,
            &[
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port,
                "-sd",
                &nats_store,
            ],
            &logs,
        );
        let mut tgemu = Proc::new("tgemu", &bins.tgemu, &[], &logs);
        tgemu
            .env("TGEMU_ADDR", format!("127.0.0.1:{}", layout.tgemu_port))
            .env("TGEMU_TOKEN", BOT_TOKEN);
        let mut server = Proc::new("server", &bins.server, &[], &logs);
        server
            .env("DOSSIER_ENV", &layout.env_name)
            .env("DOSSIER_LISTEN_ADDR", format!("127.0.0.1:{}", layout.server_port))
            .env("DOSSIER_PUBLIC_URL", format!("http://localhost:{}", layout.server_port))
            .env("DOSSIER_DATABASE_URL", layout.database_url())
            .env("DOSSIER_NATS_URL", layout.nats_url())
            .env("DOSSIER_DATA_DIR", layout.dir.join("data").to_string_lossy())
            .env("DOSSIER_MODEL_DIR", bins.model_dir.to_string_lossy())
            .env("DOSSIER_TELEGRAM_BOT_TOKEN", BOT_TOKEN)
            .env("DOSSIER_TRUSTED_PROXIES", "1")
            .env("DOSSIER_METRICS_LISTEN", "off")
            .env("DOSSIER_SERVICES__BOT__SECRET", service_secret)
            .env(
                "DOSSIER_SERVICES__BOT__PERMISSIONS",
                "[users:read, telegram:link, telegram:updates, documents:upload, documents:read, rag:query]",
            )
            // A crashed worker's message comes back after 10 s, a document whose announcement
            // died with a process after 10 s more: the run settles in seconds, not minutes.
            .env("DOSSIER_DOCUMENTS__ACK_WAIT_SECS", "10")
            .env("DOSSIER_DOCUMENTS__STALLED_AFTER_SECS", "10");
        if let Ok(level) = std::env::var("RUST_LOG") {
            server.env("RUST_LOG", level);
        }
        let mut bot = Proc::new("bot", &bins.bot, &[], &logs);
        bot.env("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
            .env("DOSSIER_BOT_SECRET", service_secret)
            .env("DOSSIER_BOT_API_URL", format!("{}/", layout.tgemu_url()))
            .env("DOSSIER_API_URL", layout.server_url())
            .env(
                "DOSSIER_PUBLIC_URL",
                format!("http://localhost:{}", layout.server_port),
            )
            .env("DOSSIER_NATS_URL", layout.nats_url())
            .env("DOSSIER_ENV", &layout.env_name)
            .env("DOSSIER_BOT_METRICS_LISTEN", "off")
            .env(
                "DOSSIER_BOT_JOURNAL_DIR",
                layout.dir.join("journal").to_string_lossy(),
            );
        let mut stack = Self {
            layout,
            postgres,
            nats,
            tgemu,
            server,
            bot,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        stack.start_postgres().await?;
        stack.start_nats().await?;
        stack.tgemu.start()?;
        let getme = format!("{}/bot{BOT_TOKEN}/getMe", stack.layout.tgemu_url());
        let http = stack.http.clone();
        wait_until("the emulator", Duration::from_secs(30), || {
            answers(&http, &getme)
        })
        .await?;
        stack.start_server().await?;
        stack.bot.start()?;
        let commands = format!("{}/control/commands", stack.layout.tgemu_url());
        wait_until("the bot's command menu", Duration::from_secs(60), || {
            let (http, commands) = (http.clone(), commands.clone());
            async move {
                match http.get(&commands).send().await {
                    Ok(r) => r
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|v| v.to_string().contains("docs")),
                    Err(_) => false,
                }
            }
        })
        .await?;
        Ok(stack)
    }

    pub async fn start_postgres(&mut self) -> anyhow::Result<()> {
        self.postgres.start()?;
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.layout.pg_port
        );
        wait_until("PostgreSQL", Duration::from_secs(60), || {
            let url = url.clone();
            async move {
                use sqlx::Connection;
                sqlx::PgConnection::connect(&url).await.is_ok()
            }
        })
        .await
    }

    pub async fn start_nats(&mut self) -> anyhow::Result<()> {
        self.nats.start()?;
        let port = self.layout.nats_port;
        wait_until("NATS", Duration::from_secs(30), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await
    }

    /// Starts the server and waits for `/readyz` (PostgreSQL and NATS answer through it).
    pub async fn start_server(&mut self) -> anyhow::Result<()> {
        self.server.start()?;
        let ready = format!("{}/readyz", self.layout.server_url());
        let http = self.http.clone();
        let result = wait_until("the server to be ready", Duration::from_secs(120), || {
            answers(&http, &ready)
        })
        .await;
        if result.is_err() {
            self.server.check_alive()?;
        }
        result
    }

    /// Every process still running (none crashed on its own).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for proc in [
            &mut self.postgres,
            &mut self.nats,
            &mut self.tgemu,
            &mut self.server,
            &mut self.bot,
        ] {
            proc.check_alive()?;
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.bot.signal_and_wait("TERM").await;
        let _ = self.server.signal_and_wait("TERM").await;
        let _ = self.tgemu.kill9().await;
        let _ = self.nats.signal_and_wait("TERM").await;
        let _ = self.postgres.signal_and_wait("INT").await;
    }
}

async fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .await
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `program`, or `setpriv` running it as the `postgres` user.
fn privileges(as_postgres: bool, program: &Path) -> (PathBuf, Vec<String>) {
    if !as_postgres {
        return (program.to_owned(), Vec::new());
    }
    (
        PathBuf::from("setpriv"),
        [
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
            &program.to_string_lossy(),
        ]
        .map(str::to_owned)
        .to_vec(),
    )
}

/// Counts regular files under `dir` (the local object store).
pub fn count_files(dir: &Path) -> usize {
    testkit::files_under(dir).len()
}

/// The distribution of `samples` as (p50, p95, p99, max).
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration, Duration) {
    if samples.is_empty() {
        return Default::default();
    }
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index.min(samples.len() - 1)]
    };
    (at(0.50), at(0.95), at(0.99), samples[samples.len() - 1])
}
