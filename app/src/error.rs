//! The wire error: what crosses HTTP to the browser, the bot and tests.
//!
//! Codes are stable snake_case strings (the `code` field); clients branch on them, so a
//! variant is renamed only with a migration plan. Details that could leak internals (SQL,
//! stack traces, peer addresses) never go in here: the server logs them with the incident
//! id that `Internal` carries.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// A field-level validation problem, shown next to the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ApiError {
    /// No valid session or service signature accompanied the call.
    #[error("please sign in")]
    Unauthenticated,
    /// The caller is known but may not do this.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// The thing does not exist, or belongs to somebody else (indistinguishable on purpose).
    #[error("not found")]
    NotFound,
    /// The input was understood but is not acceptable.
    #[error("{message}")]
    Validation {
        message: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fields: Vec<FieldError>,
    },
    /// The request conflicts with existing state (e.g. an email already registered).
    #[error("{message}")]
    Conflict { message: String },
    /// Too many attempts; try again after the given number of seconds.
    #[error("too many attempts, try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A state-changing call came from a foreign origin.
    #[error("request rejected: cross-site request")]
    CsrfRejected,
    /// Valid Telegram launch data, but older than the accepted window: the Mini App was left
    /// open too long (or the data was replayed). Reopening it from the bot gives fresh data.
    #[error("this page has expired; close it and open Dossier again from the bot")]
    InitDataExpired,
    /// The Telegram user is valid but not linked to any account.
    #[error("this Telegram account is not linked to a Dossier account")]
    TelegramNotLinked,
    /// A Telegram link token that is unknown or older than its 5 minutes.
    #[error("this link has expired; create a new one on the settings page")]
    LinkExpired,
    /// A Telegram link token that was already used (tokens work once).
    #[error("this link was already used; create a new one on the settings page")]
    LinkUsed,
    /// A file larger than the configured limit.
    #[error("the file is too large: the limit is {max_mb} MB")]
    TooLarge { max_mb: u64 },
    /// The server is at capacity for this kind of request (admission control sheds it before
    /// any work); try again after the given number of seconds.
    #[error("Dossier is busy, try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// A dependency (database, NATS, storage) is down; retrying later may work.
    #[error("the service is busy or a dependency is down, try again shortly")]
    Unavailable,
    /// An unexpected failure. `incident` matches a server log line.
    #[error("something went wrong on our side (incident {incident})")]
    Internal { incident: String },
    /// The request could not be encoded, sent or decoded (raised by the server-fn machinery).
    #[error("request failed: {message}")]
    Request { message: String },
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Validation {
            message: message.clone(),
            fields: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }

    /// The stable code, as serialised in the `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Validation { .. } => "validation",
            Self::Conflict { .. } => "conflict",
            Self::RateLimited { .. } => "rate_limited",
            Self::CsrfRejected => "csrf_rejected",
            Self::InitDataExpired => "init_data_expired",
            Self::TelegramNotLinked => "telegram_not_linked",
            Self::LinkExpired => "link_expired",
            Self::LinkUsed => "link_used",
            Self::TooLarge { .. } => "too_large",
            Self::Busy { .. } => "busy",
            Self::Unavailable => "unavailable",
            Self::Internal { .. } => "internal",
            Self::Request { .. } => "request",
        }
    }

    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::InitDataExpired => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::CsrfRejected | Self::TelegramNotLinked => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Validation { .. } | Self::Request { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::LinkExpired | Self::LinkUsed => StatusCode::GONE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy { .. } | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        Self::Request {
            message: value.to_string(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Every server function returns through this: an error sets the HTTP status that matches
/// its code (401, 403, 429, …) instead of a blanket 500.
#[cfg(feature = "ssr")]
pub fn respond<T>(result: ApiResult<T>) -> ApiResult<T> {
    if let Err(error) = &result
        && let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
    {
        response.set_status(error.http_status());
    }
    result
}

#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let retry_after = match &self {
            Self::Busy { retry_after_secs } | Self::RateLimited { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        };
        let mut response = (self.http_status(), axum::Json(self)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case_on_the_wire() {
        let cases = [
            (ApiError::Unauthenticated, r#"{"code":"unauthenticated"}"#),
            (
                ApiError::TelegramNotLinked,
                r#"{"code":"telegram_not_linked"}"#,
            ),
            (
                ApiError::RateLimited {
                    retry_after_secs: 30,
                },
                r#"{"code":"rate_limited","retry_after_secs":30}"#,
            ),
            (
                ApiError::Busy {
                    retry_after_secs: 1,
                },
                r#"{"code":"busy","retry_after_secs":1}"#,
            ),
            (
                ApiError::validation("bad email"),
                r#"{"code":"validation","message":"bad email"}"#,
            ),
        ];
        for (error, wire) in cases {
            let json = serde_json::to_string(&error).expect("serialises");
            assert_eq!(json, wire);
            assert_eq!(
                serde_json::from_str::<ApiError>(wire).expect("parses"),
                error
            );
            assert!(json.contains(error.code()));
        }
    }

    #[test]
    fn statuses_follow_the_meaning() {
        assert_eq!(ApiError::Unauthenticated.http_status(), 401);
        assert_eq!(ApiError::CsrfRejected.http_status(), 403);
        assert_eq!(
            ApiError::RateLimited {
                retry_after_secs: 1
            }
            .http_status(),
            429
        );
        assert_eq!(ApiError::Unavailable.http_status(), 503);
    }
}
