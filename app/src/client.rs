//! The client every server function is called through: the browser's `fetch`, plus the
//! `X-Dossier-Session` header while a header-carried session is held.
//!
//! A Mini App runs inside Telegram's cross-site iframe, where cookies are often blocked, so
//! its session (from `miniapp_sign_in`) travels in this header instead. A cross-site page
//! cannot make a browser add it, which is why such calls need no CSRF check.

use std::future::Future;

use bytes::Bytes;
use futures::{Sink, Stream};
use server_fn::client::Client;
use server_fn::client::browser::BrowserClient;
use server_fn::error::FromServerFnError;
use server_fn::request::browser::BrowserRequest;
use server_fn::response::browser::BrowserResponse;

/// The header a client adds when cookies are unavailable (a Mini App in a cross-site iframe).
pub const SESSION_HEADER: &str = "x-dossier-session";

pub struct ApiClient;

impl<E, IS, OS> Client<E, IS, OS> for ApiClient
where
    E: FromServerFnError,
    IS: FromServerFnError,
    OS: FromServerFnError,
{
    type Request = BrowserRequest;
    type Response = BrowserResponse;

    fn send(request: BrowserRequest) -> impl Future<Output = Result<BrowserResponse, E>> + Send {
        #[cfg(feature = "hydrate")]
        if let Some(token) = session::token() {
            request.headers().set(SESSION_HEADER, &token);
        }
        <BrowserClient as Client<E, IS, OS>>::send(request)
    }

    #[allow(clippy::type_complexity)]
    fn open_websocket(
        path: &str,
    ) -> impl Future<
        Output = Result<
            (
                impl Stream<Item = Result<Bytes, Bytes>> + Send + 'static,
                impl Sink<Bytes> + Send + 'static,
            ),
            E,
        >,
    > + Send {
        <BrowserClient as Client<E, IS, OS>>::open_websocket(path)
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        <BrowserClient as Client<E, IS, OS>>::spawn(future)
    }
}

/// The header-carried session, kept in memory and in `sessionStorage` (so a reload inside the
/// Mini App keeps it, and closing the Mini App forgets it).
#[cfg(feature = "hydrate")]
pub mod session {
    use std::cell::RefCell;

    const STORAGE_KEY: &str = "dossier.session";

    thread_local! {
        static TOKEN: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.session_storage().ok().flatten()
    }

    pub fn token() -> Option<String> {
        TOKEN.with(|token| {
            let mut token = token.borrow_mut();
            if token.is_none() {
                *token = storage().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten());
            }
            token.clone()
        })
    }

    /// Holds `token` for every later call, or forgets it with `None`.
    pub fn set_token(new: Option<String>) {
        if let Some(storage) = storage() {
            // Storage may be disabled (private mode); memory still carries the session.
            let _ = match &new {
                Some(value) => storage.set_item(STORAGE_KEY, value),
                None => storage.remove_item(STORAGE_KEY),
            };
        }
        TOKEN.with(|token| *token.borrow_mut() = new);
    }
}
