//! Telegram's launch parameters, as a Mini App receives them in its URL fragment
//! (`#tgWebAppData=…&tgWebAppVersion=…&tgWebAppPlatform=…&tgWebAppThemeParams=…`), and the
//! theme they carry. Pure functions: the browser half only reads `location.hash`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What Telegram handed the Mini App when it opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchParams {
    /// The raw, signed `initData` string: sent to the server as it is, never trusted here.
    pub init_data: Option<String>,
    pub version: Option<String>,
    pub platform: Option<String>,
    pub start_param: Option<String>,
    /// `tgWebAppThemeParams`: colour names (`bg_color`, …) to `#rrggbb`.
    pub theme: BTreeMap<String, String>,
}

impl LaunchParams {
    /// Parses a location fragment (with or without the leading `#`). Unknown keys are ignored;
    /// a theme that does not parse is left out rather than failing the launch.
    pub fn from_fragment(fragment: &str) -> Self {
        let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
        // Telegram may put a path first (`#/route?tgWebAppData=…`): the parameters follow `?`.
        let query = match fragment.split_once('?') {
            Some((_, query)) if !fragment.starts_with("tgWebApp") => query,
            _ => fragment,
        };
        let mut params = Self::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match key {
                "tgWebAppData" if !value.is_empty() => params.init_data = Some(value),
                "tgWebAppVersion" => params.version = Some(value),
                "tgWebAppPlatform" => params.platform = Some(value),
                "tgWebAppStartParam" => params.start_param = Some(value),
                "tgWebAppThemeParams" => params.theme = parse_theme(&value),
                _ => {}
            }
        }
        params
    }

    /// The screen a `startapp` link asks for (`t.me/<bot>/<app>?startapp=documents`): one of
    /// the Mini App's own paths, never anything the parameter spells out itself.
    pub fn start_screen(&self) -> Option<&'static str> {
        match self.start_param.as_deref()? {
            "documents" | "docs" => Some("/miniapp/documents"),
            "notifications" | "preferences" => Some("/miniapp/preferences"),
            "passkeys" => Some("/miniapp/passkeys"),
            "language" => Some("/miniapp/language"),
            "data" => Some("/miniapp/data"),
            _ => None,
        }
    }

    /// Fills what this launch lacks from an earlier one of the same tab (a reload inside the
    /// Mini App, or navigation that dropped the fragment).
    pub fn or(self, earlier: LaunchParams) -> Self {
        Self {
            init_data: self.init_data.or(earlier.init_data),
            version: self.version.or(earlier.version),
            platform: self.platform.or(earlier.platform),
            start_param: self.start_param.or(earlier.start_param),
            theme: if self.theme.is_empty() {
                earlier.theme
            } else {
                self.theme
            },
        }
    }

    /// `true` when the client's Bot API version is at least `major.minor`.
    pub fn version_at_least(&self, major: u32, minor: u32) -> bool {
        let Some(version) = &self.version else {
            return false;
        };
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        have >= (major, minor)
    }

    /// The Telegram user's `language_code` from initData: unverified, so used only to pick
    /// the language of the first screen.
    pub fn language_hint(&self) -> Option<String> {
        let init_data = self.init_data.as_deref()?;
        let user = init_data
            .split('&')
            .find_map(|pair| pair.strip_prefix("user="))
            .map(decode)?;
        let user: serde_json::Value = serde_json::from_str(&user).ok()?;
        user.get("language_code")?.as_str().map(str::to_owned)
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space); invalid escapes stay as
/// they are.
pub fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Theme colours from Telegram's JSON, keeping only well-formed `#rgb` / `#rrggbb` values
/// (they end up in CSS, so nothing else may pass).
pub fn parse_theme(json: &str) -> BTreeMap<String, String> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(json) else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter(|(key, _)| {
            key.len() <= 40 && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .filter_map(|(key, value)| Some((key, normalize_color(value.as_str()?)?)))
        .collect()
}

/// `#abc` → `#aabbcc`; `#AABBCC` → `#aabbcc`; anything else → `None`.
pub fn normalize_color(value: &str) -> Option<String> {
    let hex_digits = value.strip_prefix('#')?;
    if !hex_digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex_digits.len() {
        6 => Some(format!("#{}", hex_digits.to_ascii_lowercase())),
        3 => Some(hex_digits.chars().fold(String::from("#"), |mut out, c| {
            out.push(c.to_ascii_lowercase());
            out.push(c.to_ascii_lowercase());
            out
        })),
        _ => None,
    }
}

/// The CSS custom property Telegram's own script sets for a theme key:
/// `bg_color` → `--tg-theme-bg-color`.
pub fn css_variable(key: &str) -> String {
    format!("--tg-theme-{}", key.replace('_', "-"))
}

/// Whether a `#rrggbb` background is dark (perceived luminance below one half), which decides
/// the colour scheme.
pub fn is_dark(color: &str) -> bool {
    let Some(color) = normalize_color(color) else {
        return false;
    };
    let channel = |i: usize| u8::from_str_radix(&color[i..i + 2], 16).unwrap_or(255) as f32;
    let luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    luminance < 128.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_parameter_names_a_screen_or_nothing() {
        let with = |param: &str| LaunchParams {
            start_param: Some(param.to_owned()),
            ..LaunchParams::default()
        };
        assert_eq!(with("docs").start_screen(), Some("/miniapp/documents"));
        assert_eq!(with("documents").start_screen(), Some("/miniapp/documents"));
        assert_eq!(
            with("notifications").start_screen(),
            Some("/miniapp/preferences")
        );
        assert_eq!(with("passkeys").start_screen(), Some("/miniapp/passkeys"));
        assert_eq!(with("language").start_screen(), Some("/miniapp/language"));
        assert_eq!(with("data").start_screen(), Some("/miniapp/data"));
        for hostile in [
            "",
            "../admin",
            "//evil.example",
            "https://evil.example",
            "DOCS",
        ] {
            assert_eq!(with(hostile).start_screen(), None, "{hostile:?}");
        }
        assert_eq!(LaunchParams::default().start_screen(), None);
    }

    #[test]
    fn the_fragment_telegram_sends_is_read() {
        let init = "query_id=AAH&user=%7B%22id%22%3A42%2C%22language_code%22%3A%22ru%22%7D&auth_date=1700000000&hash=ab";
        let theme = r##"{"bg_color":"#17212B","text_color":"#f5f5f5","button_color":"#5288c1","evil":"red;}"}"##;
        let fragment = format!(
            "#tgWebAppData={}&tgWebAppVersion=7.10&tgWebAppPlatform=tdesktop&tgWebAppThemeParams={}&tgWebAppStartParam=docs",
            urlencode(init),
            urlencode(theme)
        );
        let params = LaunchParams::from_fragment(&fragment);
        assert_eq!(params.init_data.as_deref(), Some(init));
        assert_eq!(params.version.as_deref(), Some("7.10"));
        assert_eq!(params.platform.as_deref(), Some("tdesktop"));
        assert_eq!(params.start_param.as_deref(), Some("docs"));
        assert_eq!(
            params.theme.get("bg_color").map(String::as_str),
            Some("#17212b")
        );
        assert_eq!(params.theme.get("evil"), None, "only colours pass into CSS");
        assert_eq!(params.language_hint().as_deref(), Some("ru"));
        assert!(params.version_at_least(7, 2));
        assert!(params.version_at_least(7, 10));
        assert!(!params.version_at_least(8, 0));
    }

    #[test]
    fn a_path_before_the_parameters_and_an_empty_fragment_are_handled() {
        let params = LaunchParams::from_fragment("#/docs?tgWebAppData=a%3Db&tgWebAppVersion=6.0");
        assert_eq!(params.init_data.as_deref(), Some("a=b"));
        let empty = LaunchParams::from_fragment("");
        assert_eq!(empty, LaunchParams::default());
        assert!(!empty.version_at_least(6, 0));
    }

    #[test]
    fn an_earlier_launch_fills_the_gaps() {
        let earlier = LaunchParams::from_fragment(
            "tgWebAppData=x&tgWebAppVersion=7.0&tgWebAppThemeParams=%7B%22bg_color%22%3A%22%23fff%22%7D",
        );
        let now = LaunchParams::from_fragment("").or(earlier.clone());
        assert_eq!(now, earlier);
        assert_eq!(
            now.theme.get("bg_color").map(String::as_str),
            Some("#ffffff")
        );
    }

    #[test]
    fn decoding_is_forgiving() {
        assert_eq!(decode("a+b%20c"), "a b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%D0%B4"), "д");
    }

    #[test]
    fn colours_and_schemes() {
        assert_eq!(normalize_color("#ABC").as_deref(), Some("#aabbcc"));
        assert_eq!(normalize_color("#12345"), None);
        assert_eq!(normalize_color("blue"), None);
        assert_eq!(
            css_variable("secondary_bg_color"),
            "--tg-theme-secondary-bg-color"
        );
        assert!(is_dark("#17212b"));
        assert!(!is_dark("#ffffff"));
        assert!(!is_dark("nonsense"));
    }

    fn urlencode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
}
