//! The person's account as a whole: an overview (linked Telegram, counts), the language
//! Dossier speaks to them, and their data rights: export everything, delete everything.

#[cfg(feature = "ssr")]
pub mod service;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The languages Dossier speaks (bot messages and the Mini App).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Ru,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Ru];

    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ru => "ru",
        }
    }

    /// The language's own name for itself.
    pub fn native_name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::Ru => "Русский",
        }
    }

    /// From a stored code or an IETF tag such as Telegram's `language_code` (`ru`, `ru-RU`,
    /// `en-GB`); `None` for anything Dossier does not speak.
    pub fn parse(code: &str) -> Option<Self> {
        let primary = code.split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Self::En),
            "ru" => Some(Self::Ru),
            _ => None,
        }
    }

    /// The language to speak: the person's choice, else their client's, else English.
    pub fn resolve(chosen: Option<Language>, client: Option<&str>) -> Self {
        chosen
            .or_else(|| client.and_then(Self::parse))
            .unwrap_or(Self::En)
    }
}

/// The linked Telegram account, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramBrief {
    pub first_name: String,
    pub username: Option<String>,
}

/// What the Mini App's home screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub email: String,
    pub telegram: Option<TelegramBrief>,
    pub documents: i64,
    pub processed: i64,
    pub pending: i64,
    /// Failed or not supported.
    pub failed: i64,
    pub storage_bytes: i64,
    pub passkeys: i64,
    /// The language the person chose; `None` follows their Telegram client.
    pub language: Option<Language>,
    /// Their Telegram client's language, when Dossier has seen it.
    pub telegram_language: Option<String>,
}

/// A one-time download of everything (10 minutes, single use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportLink {
    pub url: String,
    pub expires_in_secs: u64,
}

/// The signed-in person's overview.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "account/overview")]
pub async fn account_overview() -> Result<Overview, ApiError> {
    crate::error::respond(
        async {
            use crate::auth::principal::{Permission, authorize};
            let caller = authorize(Permission::UsersRead).await?;
            let state = crate::state::app_state()?;
            service::overview(&state.db, caller.user_id).await
        }
        .await,
    )
}

/// Chooses the language Dossier speaks to the signed-in person (`en`, `ru`); none or an empty
/// value follows their Telegram client.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "account/language/set")]
pub async fn set_language(language: Option<String>) -> Result<Option<Language>, ApiError> {
    crate::error::respond(
        async {
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            let state = crate::state::app_state()?;
            let language = match language.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(code) => Some(
                    Language::ALL
                        .into_iter()
                        .find(|l| l.code() == code)
                        .ok_or_else(|| ApiError::field("language", "choose English or Russian"))?,
                ),
            };
            service::set_language(&state.db, caller.user_id, language).await
        }
        .await,
    )
}

/// Prepares a download of everything the person stored: a zip of the original files and a
/// `metadata.json`. The link works once, for ten minutes (open it in any browser).
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "account/export")]
pub async fn export_data() -> Result<ExportLink, ApiError> {
    crate::error::respond(
        async {
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            let state = crate::state::app_state()?;
            service::export_link(&state, caller.user_id).await
        }
        .await,
    )
}

/// Deletes the signed-in person's account and everything in it: rows, files, vectors, cached
/// answers, sessions and the Telegram link. `confirm_email` must be the account's email.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "account/delete")]
pub async fn delete_account(confirm_email: String) -> Result<(), ApiError> {
    crate::error::respond(
        async {
            let caller = crate::auth::passkeys::store::authorize_person().await?;
            let ctx = crate::auth::accounts::RequestCtx::current()?;
            service::delete_account(&ctx.state, caller.user_id, &confirm_email).await?;
            crate::auth::accounts::sign_out(&ctx).await
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::Language;

    #[test]
    fn language_follows_the_choice_then_the_client() {
        assert_eq!(Language::parse("ru-RU"), Some(Language::Ru));
        assert_eq!(Language::parse("EN_gb"), Some(Language::En));
        assert_eq!(Language::parse("de"), None);
        assert_eq!(Language::parse(""), None);
        assert_eq!(Language::resolve(None, Some("ru")), Language::Ru);
        assert_eq!(
            Language::resolve(Some(Language::En), Some("ru")),
            Language::En
        );
        assert_eq!(Language::resolve(None, Some("fr")), Language::En);
        assert_eq!(Language::resolve(None, None), Language::En);
    }
}
