//! Bot API parameters: JSON, form, query string or multipart, all turned into one JSON object
//! plus the uploaded files, as Telegram accepts them.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use serde_json::{Map, Value};

/// Fields Telegram documents as "JSON-serialized" when sent as form or multipart text.
const JSON_FIELDS: &[&str] = &[
    "reply_markup",
    "entities",
    "caption_entities",
    "allowed_updates",
    "commands",
    "menu_button",
    "reply_parameters",
    "link_preview_options",
];

#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
pub struct Params {
    pub fields: Map<String, Value>,
    pub files: HashMap<String, Upload>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// An integer sent as a JSON number or as decimal text.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.fields.get(name).and_then(int_of)
    }

    pub fn bool(&self, name: &str) -> bool {
        match self.fields.get(name) {
            Some(Value::Bool(value)) => *value,
            Some(Value::String(value)) => value == "true" || value == "1",
            _ => false,
        }
    }
}

pub fn int_of(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

fn insert_text(fields: &mut Map<String, Value>, name: String, text: String) {
    let value = if JSON_FIELDS.contains(&name.as_str()) {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    } else {
        Value::String(text)
    };
    fields.insert(name, value);
}

/// Reads a request's parameters; the error is a Telegram-style description.
pub async fn read(request: Request) -> Result<Params, String> {
    let mut params = Params::default();
    if let Some(query) = request.uri().query() {
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            insert_text(&mut params.fields, name.into_owned(), value.into_owned());
        }
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| format!("Bad Request: {e}"))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| format!("Bad Request: {e}"))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if let Some(file_name) = field.file_name().map(str::to_owned) {
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|e| {
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        "Request Entity Too Large".to_owned()
                    } else {
                        format!("Bad Request: {e}")
                    }
                })?;
                params.files.insert(
                    name,
                    Upload {
                        file_name: Some(file_name),
                        content_type,
                        bytes,
                    },
                );
            } else {
                let text = field
                    .text()
                    .await
                    .map_err(|e| format!("Bad Request: {e}"))?;
                insert_text(&mut params.fields, name, text);
            }
        }
        return Ok(params);
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .map_err(|_| "Request Entity Too Large".to_owned())?;
    if body.is_empty() {
        return Ok(params);
    }
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => params.fields.extend(map),
            _ => return Err("Bad Request: invalid JSON body".into()),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        for (name, value) in url::form_urlencoded::parse(&body) {
            insert_text(&mut params.fields, name.into_owned(), value.into_owned());
        }
    } else {
        return Err(format!(
            "Bad Request: unsupported content type {content_type:?}"
        ));
    }
    Ok(params)
}
