//! The Content-Security-Policy of every page. Inline scripts (Leptos' hydration and streaming
//! scripts) run only with the response's nonce; the Mini App may be framed by Telegram's web
//! clients and nothing else, every other page by nobody. The server's `security_headers`
//! middleware adds the rest (nosniff, referrer policy, `X-Frame-Options`, HSTS) and a locked
//! policy for everything that is not a page.

/// The origins of Telegram's web clients, which open Mini Apps in an iframe.
pub const TELEGRAM_WEB_ORIGINS: &str =
    "https://web.telegram.org https://webk.telegram.org https://webz.telegram.org";

/// For responses that are not pages (API answers, files): nothing may run or frame them.
pub const LOCKED_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// Whether `path` is the Mini App (framed by Telegram Web).
pub fn is_miniapp(path: &str) -> bool {
    path == "/miniapp" || path.starts_with("/miniapp/")
}

/// The policy of the page at `path`; `nonce` is the one Leptos put on this response's scripts.
pub fn page_policy(path: &str, nonce: Option<&str>) -> String {
    let scripts = match nonce {
        Some(nonce) => format!("'self' 'nonce-{nonce}' 'wasm-unsafe-eval'"),
        None => "'self' 'wasm-unsafe-eval'".to_owned(),
    };
    let ancestors = if is_miniapp(path) {
        TELEGRAM_WEB_ORIGINS
    } else {
        "'none'"
    };
    format!(
        "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )
}

/// Sets the page's policy on the response being rendered (server side only).
#[cfg(feature = "ssr")]
pub fn set_page_policy() {
    use leptos::prelude::use_context;
    let (Some(response), Some(parts)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        use_context::<http::request::Parts>(),
    ) else {
        return;
    };
    let nonce = leptos::nonce::use_nonce();
    let policy = page_policy(parts.uri.path(), nonce.as_deref());
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mini_app_may_be_framed_and_only_by_telegram() {
        let page = page_policy("/documents", Some("abc"));
        assert!(page.contains("frame-ancestors 'none'"));
        assert!(page.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval'"));
        let scripts = page
            .split(';')
            .find(|directive| directive.trim().starts_with("script-src"))
            .unwrap_or_default();
        assert!(!scripts.contains("unsafe-inline"), "{scripts}");
        let mini = page_policy("/miniapp/passkeys", Some("abc"));
        assert!(mini.ends_with(&format!("frame-ancestors {TELEGRAM_WEB_ORIGINS}")));
        assert!(is_miniapp("/miniapp"));
        assert!(!is_miniapp("/miniapplication"));
        assert!(!page_policy("/", None).contains("nonce"));
    }
}
