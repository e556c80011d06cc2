//! Shared by the benchmarks: percentiles, the report line, and a scratch database.

#![allow(dead_code)]

use std::time::Duration;

pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

pub fn report(name: &str, mut samples: Vec<Duration>) {
    let p50 = percentile(&mut samples, 0.50);
    let p99 = percentile(&mut samples, 0.99);
    let max = percentile(&mut samples, 1.0);
    println!(
        "{name:<48} n={:<6} p50={:>9.3?} p99={:>9.3?} max={:>9.3?}",
        samples.len(),
        p50,
        p99,
        max
    );
}

/// A database of its own on the server named by DATABASE_URL; dropped by `Scratch::drop_db`.
pub struct Scratch {
    admin: sqlx::PgPool,
    pub name: String,
    pub url: String,
}

impl Scratch {
    pub async fn create(label: &str) -> anyhow::Result<Self> {
        let base = std::env::var("DATABASE_URL")
            .map_err(|_| anyhow::anyhow!("DATABASE_URL is not set"))?;
        let admin = sqlx::PgPool::connect(&base).await?;
        let name = format!("dossier_bench_{label}_{}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        let url = format!(
            "{}/{name}",
            base.rsplit_once('/')
                .map_or(base.as_str(), |(head, _)| head)
        );
        Ok(Self { admin, name, url })
    }

    pub fn settings(&self) -> app::config::Settings {
        app::config::Settings {
            database_url: self.url.clone().into(),
            nats_url: std::env::var("DOSSIER_TEST_NATS_URL")
                .unwrap_or_else(|_| "nats://127.0.0.1:14222".into()),
            // The benches measure the work, not the shedding.
            admission: app::config::AdmissionSettings {
                questions: 64,
                uploads: 64,
            },
            ..app::config::Settings::default()
        }
    }

    pub async fn drop_db(self, state: app::state::AppState) -> anyhow::Result<()> {
        state.db.close().await;
        sqlx::query(&format!("DROP DATABASE {}", self.name))
            .execute(&self.admin)
            .await?;
        Ok(())
    }
}
