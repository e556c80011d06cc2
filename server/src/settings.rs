//! Layered settings: defaults, then an optional TOML file, then `DOSSIER_*` variables.

use std::path::Path;

use anyhow::Context;
use app::config::Settings;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

/// Loads settings. `file` is read when it exists; a missing file is not an error, so a fresh
/// checkout runs on defaults and environment variables alone.
pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
    load_from(file, Env::prefixed("DOSSIER_").split("__"))
}

fn load_from(file: Option<&Path>, env: Env) -> anyhow::Result<Settings> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = file {
        figment = figment.merge(Toml::file(file));
    }
    let settings: Settings = figment
        .merge(env)
        .extract()
        .context("failed to read settings")?;
    settings.validate().map_err(anyhow::Error::msg)?;
    Ok(settings)
}

#[cfg(test)]
// `figment::Jail`'s closures must return `figment::Error`, which is large; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn layers_apply_in_order_defaults_file_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "dossier.toml",
                "env = \"staging\"\nnats_url = \"nats://file:1\"\ndatabase_max_connections = 3\n",
            )?;
            jail.set_env("DOSSIER_NATS_URL", "nats://env:2");
            jail.set_env("DOSSIER_DATABASE_URL", "postgres://u:secret@h/d");
            let settings = load(Some(Path::new("dossier.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(settings.env, "staging", "file overrides defaults");
            assert_eq!(settings.nats_url, "nats://env:2", "env overrides file");
            assert_eq!(settings.database_max_connections, 3);
            assert_eq!(
                settings.database_url.expose_secret(),
                "postgres://u:secret@h/d"
            );
            assert_eq!(settings.listen_addr.port(), 3000, "defaults fill the rest");
            assert!(!format!("{settings:?}").contains("secret@"));
            Ok(())
        });
    }

    #[test]
    fn invalid_values_are_reported_with_their_name() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DOSSIER_ENV", "Prod.1");
            let error = load(None).expect_err("must fail");
            assert!(error.to_string().contains("Prod.1"), "{error}");
            jail.set_env("DOSSIER_ENV", "prod");
            jail.set_env("DOSSIER_LISTEN_ADDR", "not an address");
            let error = format!("{:#}", load(None).expect_err("must fail"));
            assert!(error.to_lowercase().contains("listen_addr"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn services_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "DOSSIER_SERVICES__BOT__SECRET",
                "0123456789abcdef0123456789abcdef",
            );
            jail.set_env(
                "DOSSIER_SERVICES__BOT__PERMISSIONS",
                "[users:read, telegram:link, telegram:updates]",
            );
            let settings = load(None).map_err(|e| format!("{e:#}"))?;
            let bot = settings.services.get("bot").ok_or("no bot service")?;
            assert_eq!(
                bot.permissions,
                vec!["users:read", "telegram:link", "telegram:updates"]
            );
            assert!(!format!("{settings:?}").contains("0123456789abcdef"));
            Ok(())
        });
    }
}
