//! Message formatting and keyboards, checked the way Telegram checks them: `parse_mode=HTML`
//! becomes plain text plus entities (offsets in UTF-16 code units), and inline keyboards are
//! validated button by button.

use serde_json::{Value, json};

const MAX_CALLBACK_DATA_BYTES: usize = 64;

fn tag_kind(tag: &str) -> Option<&'static str> {
    Some(match tag {
        "b" | "strong" => "bold",
        "i" | "em" => "italic",
        "u" | "ins" => "underline",
        "s" | "strike" | "del" => "strikethrough",
        "tg-spoiler" => "spoiler",
        "code" => "code",
        "pre" => "pre",
        "a" => "text_link",
        "blockquote" => "blockquote",
        _ => return None,
    })
}

fn attribute(attrs: &str, name: &str) -> Option<String> {
    let start = attrs.find(&format!("{name}="))? + name.len() + 1;
    let rest = &attrs[start..];
    let quote = rest.chars().next()?;
    if quote == '"' || quote == '\'' {
        let end = rest[1..].find(quote)?;
        Some(unescape(&rest[1..=end]).unwrap_or_default())
    } else {
        Some(rest.split_whitespace().next().unwrap_or("").to_owned())
    }
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(';')
            .filter(|end| *end <= 10)
            .ok_or("Unsupported entity: '&' must be escaped as &amp;")?;
        let name = &tail[1..end];
        let ch = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            _ if name.starts_with("#x") => u32::from_str_radix(&name[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or("Unsupported entity")?,
            _ if name.starts_with('#') => name[1..]
                .parse()
                .ok()
                .and_then(char::from_u32)
                .ok_or("Unsupported entity")?,
            _ => return Err(format!("Unsupported entity \"&{name};\"")),
        };
        out.push(ch);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses Telegram's HTML subset into plain text and entities.
pub fn parse_html(input: &str) -> Result<(String, Vec<Value>), String> {
    let mut text = String::new();
    let mut utf16_len = 0usize;
    let mut entities = Vec::new();
    // (tag, entity type, start offset, url)
    let mut open: Vec<(String, &'static str, usize, Option<String>)> = Vec::new();
    let mut rest = input;
    let mut consumed = 0usize;
    let fail = |message: String| format!("Bad Request: can't parse entities: {message}");
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            text.push_str(&unescape(rest).map_err(fail)?);
            break;
        };
        let plain = unescape(&rest[..lt]).map_err(fail)?;
        utf16_len += plain.encode_utf16().count();
        text.push_str(&plain);
        let tag_start = consumed + lt;
        let after = &rest[lt + 1..];
        let gt = after.find('>').ok_or_else(|| {
            fail(format!(
                "Unclosed start tag at byte offset {tag_start}: '<' must be escaped as &lt;"
            ))
        })?;
        let inside = &after[..gt];
        if let Some(name) = inside.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            match open.pop() {
                Some((tag, kind, start, url)) if tag == name => {
                    if utf16_len > start {
                        let mut entity =
                            json!({"type": kind, "offset": start, "length": utf16_len - start});
                        if let Some(url) = url {
                            entity["url"] = json!(url);
                        }
                        entities.push(entity);
                    }
                }
                _ => {
                    return Err(fail(format!(
                        "Unmatched end tag at byte offset {tag_start}, expected \"</{}>\", found \"</{name}>\"",
                        open.last().map_or("", |(tag, ..)| tag.as_str())
                    )));
                }
            }
        } else {
            let name = inside
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            let kind = tag_kind(&name).ok_or_else(|| {
                fail(format!(
                    "Unsupported start tag \"{name}\" at byte offset {tag_start}"
                ))
            })?;
            let url = if kind == "text_link" {
                Some(attribute(inside, "href").ok_or_else(|| {
                    fail(format!(
                        "Tag \"a\" must have attribute href at byte offset {tag_start}"
                    ))
                })?)
            } else {
                None
            };
            open.push((name, kind, utf16_len, url));
        }
        consumed += lt + 1 + gt + 1;
        rest = &after[gt + 1..];
    }
    if let Some((tag, ..)) = open.last() {
        return Err(fail(format!(
            "Can't find end tag corresponding to start tag \"{tag}\""
        )));
    }
    entities.sort_by_key(|e| e["offset"].as_u64());
    Ok((text, entities))
}

/// Applies `parse_mode` (HTML only) or explicit `entities` to `raw`.
pub fn format(
    raw: &str,
    parse_mode: Option<&str>,
    entities: Option<&Value>,
) -> Result<(String, Option<Value>), String> {
    match parse_mode.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok((raw.to_owned(), entities.cloned())),
        Some("html") => {
            let (text, entities) = parse_html(raw)?;
            Ok((
                text,
                (!entities.is_empty()).then_some(Value::Array(entities)),
            ))
        }
        Some(other) => Err(format!(
            "Bad Request: parse_mode {other:?} is not supported by the emulator (use HTML)"
        )),
    }
}

fn url_ok(url: &str, web_app: bool) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1"));
    match parsed.scheme() {
        // Telegram wants HTTPS for Mini Apps; the emulator also lets local HTTP through.
        "https" => true,
        "http" => !web_app || local,
        "tg" => !web_app,
        _ => false,
    }
}

/// Checks an inline keyboard as Telegram does; the error is Telegram's description.
pub fn check_reply_markup(markup: &Value) -> Result<(), String> {
    let Some(rows) = markup.get("inline_keyboard") else {
        // Reply keyboards and keyboard removal are accepted as they are.
        return if markup.is_object() {
            Ok(())
        } else {
            Err("Bad Request: can't parse reply keyboard markup JSON object".into())
        };
    };
    let rows = rows
        .as_array()
        .ok_or("Bad Request: field \"inline_keyboard\" must be an Array")?;
    for row in rows {
        let buttons = row
            .as_array()
            .ok_or("Bad Request: can't parse inline keyboard button: an Array expected")?;
        for button in buttons {
            let text = button.get("text").and_then(Value::as_str).unwrap_or("");
            if text.is_empty() {
                return Err("Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard".into());
            }
            if let Some(data) = button.get("callback_data") {
                let data = data.as_str().unwrap_or("");
                if data.is_empty() || data.len() > MAX_CALLBACK_DATA_BYTES {
                    return Err("Bad Request: BUTTON_DATA_INVALID".into());
                }
            } else if let Some(url) = button.get("url") {
                if !url.as_str().is_some_and(|u| url_ok(u, false)) {
                    return Err("Bad Request: BUTTON_URL_INVALID".into());
                }
            } else if let Some(web_app) = button.get("web_app") {
                let url = web_app.get("url").and_then(Value::as_str).unwrap_or("");
                if !url_ok(url, true) {
                    return Err("Bad Request: BUTTON_TYPE_INVALID".into());
                }
            } else if button.get("switch_inline_query").is_none()
                && button.get("copy_text").is_none()
                && button.get("login_url").is_none()
            {
                return Err("Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard".into());
            }
        }
    }
    Ok(())
}

/// A menu button (`setChatMenuButton`) as Telegram validates it.
pub fn check_menu_button(button: &Value) -> Result<(), String> {
    match button.get("type").and_then(Value::as_str) {
        Some("commands" | "default") => Ok(()),
        Some("web_app") => {
            let url = button
                .pointer("/web_app/url")
                .and_then(Value::as_str)
                .unwrap_or("");
            let text = button.get("text").and_then(Value::as_str).unwrap_or("");
            if text.is_empty() || !url_ok(url, true) {
                Err("Bad Request: BUTTON_TYPE_INVALID".into())
            } else {
                Ok(())
            }
        }
        _ => Err("Bad Request: can't parse menu button".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text_and_utf16_entities() {
        let (text, entities) =
            parse_html("<b>Héllo</b> 👋 <a href=\"https://x.example/?a=1&amp;b=2\">link</a> &lt;3")
                .expect("valid");
        assert_eq!(text, "Héllo 👋 link <3");
        assert_eq!(
            entities[0],
            json!({"type": "bold", "offset": 0, "length": 5})
        );
        // The emoji is two UTF-16 code units.
        assert_eq!(
            entities[1],
            json!({"type": "text_link", "offset": 9, "length": 4, "url": "https://x.example/?a=1&b=2"})
        );
    }

    #[test]
    fn unescaped_or_unknown_markup_is_refused() {
        for bad in [
            "a < b",
            "<x>y</x>",
            "<b>open",
            "<b>x</i>",
            "Tom & Jerry",
            "&bogus;",
        ] {
            assert!(parse_html(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keyboards_are_checked() {
        let ok = json!({"inline_keyboard": [[{"text": "Yes", "callback_data": "a:1"}, {"text": "Open", "web_app": {"url": "http://localhost:3000/app"}}]]});
        assert!(check_reply_markup(&ok).is_ok());
        let long = json!({"inline_keyboard": [[{"text": "x", "callback_data": "d".repeat(65)}]]});
        assert_eq!(
            check_reply_markup(&long),
            Err("Bad Request: BUTTON_DATA_INVALID".into())
        );
        let web = json!({"inline_keyboard": [[{"text": "x", "web_app": {"url": "http://evil.example"}}]]});
        assert!(check_reply_markup(&web).is_err());
        let bare = json!({"inline_keyboard": [[{"text": "x"}]]});
        assert!(check_reply_markup(&bare).is_err());
    }
}
