//! The bridge to the Telegram client, as Telegram's WebView protocol specifies it, without
//! loading Telegram's script from another site:
//!
//! - out: `window.TelegramWebviewProxy.postEvent(type, json)` in the mobile and desktop
//!   clients; `window.parent.postMessage('{"eventType":…,"eventData":…}', '*')` when the Mini
//!   App runs in an iframe (Telegram Web). Who may frame `/miniapp` is restricted by CSP, not
//!   by the target origin (Telegram's own script posts to `*` as well).
//! - in: the clients call `window.Telegram.WebView.receiveEvent(type, data)`; Telegram Web
//!   posts the same JSON back to the iframe, accepted only from the parent window.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

type Handler = Rc<dyn Fn(&Value)>;

thread_local! {
    static HANDLERS: RefCell<Vec<(u64, String, Handler)>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: RefCell<u64> = const { RefCell::new(1) };
    static INSTALLED: RefCell<bool> = const { RefCell::new(false) };
}

/// Sends one event to the Telegram client; `false` when there is no client to send it to
/// (the page was opened outside Telegram).
pub fn post(event: &str, data: Value) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let proxy = js_sys::Reflect::get(&window, &JsValue::from_str("TelegramWebviewProxy"))
        .unwrap_or(JsValue::UNDEFINED);
    if proxy.is_object() {
        let post_event = js_sys::Reflect::get(&proxy, &JsValue::from_str("postEvent"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        if let Some(post_event) = post_event {
            let payload = if data.is_null() {
                String::new()
            } else {
                data.to_string()
            };
            return post_event
                .call2(
                    &proxy,
                    &JsValue::from_str(event),
                    &JsValue::from_str(&payload),
                )
                .is_ok();
        }
    }
    if let Some(parent) = parent(&window) {
        let message = json!({ "eventType": event, "eventData": data }).to_string();
        return parent
            .post_message(&JsValue::from_str(&message), "*")
            .is_ok();
    }
    false
}

/// The parent window when this page is framed (Telegram Web), else `None`.
fn parent(window: &web_sys::Window) -> Option<web_sys::Window> {
    let parent = window.parent().ok().flatten()?;
    let own: &JsValue = window.as_ref();
    let theirs: &JsValue = parent.as_ref();
    (!js_sys::Object::is(own, theirs)).then_some(parent)
}

/// Whether a Telegram client is there to talk to.
pub fn available() -> bool {
    web_sys::window().is_some_and(|window| {
        js_sys::Reflect::get(&window, &JsValue::from_str("TelegramWebviewProxy"))
            .is_ok_and(|proxy| proxy.is_object())
            || parent(&window).is_some()
    })
}

/// Calls `handler` for every `event` the client sends until the returned id is passed to `off`.
pub fn on(event: &str, handler: impl Fn(&Value) + 'static) -> u64 {
    install();
    let id = NEXT_ID.with(|next| {
        let mut next = next.borrow_mut();
        *next += 1;
        *next
    });
    HANDLERS.with(|handlers| {
        handlers
            .borrow_mut()
            .push((id, event.to_owned(), Rc::new(handler)))
    });
    id
}

pub fn off(id: u64) {
    HANDLERS.with(|handlers| handlers.borrow_mut().retain(|(other, _, _)| *other != id));
}

fn dispatch(event: &str, data: &Value) {
    let matching: Vec<Handler> = HANDLERS.with(|handlers| {
        handlers
            .borrow()
            .iter()
            .filter(|(_, name, _)| name == event)
            .map(|(_, _, handler)| handler.clone())
            .collect()
    });
    for handler in matching {
        handler(data);
    }
}

/// Parses what a client sent: the data is an object, or a JSON string of one.
fn event_data(value: &JsValue) -> Value {
    if let Some(text) = value.as_string() {
        return serde_json::from_str(&text).unwrap_or(Value::String(text));
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

/// Installs the two ways events come in, once per page.
fn install() {
    if INSTALLED.with(|installed| installed.replace(true)) {
        return;
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    // Native clients: window.Telegram.WebView.receiveEvent(eventType, eventData).
    let receive = Closure::<dyn Fn(JsValue, JsValue)>::new(|event: JsValue, data: JsValue| {
        if let Some(event) = event.as_string() {
            dispatch(&event, &event_data(&data));
        }
    });
    let telegram = js_sys::Reflect::get(&window, &JsValue::from_str("Telegram"))
        .ok()
        .filter(JsValue::is_object)
        .unwrap_or_else(|| {
            let object: JsValue = js_sys::Object::new().into();
            let _ = js_sys::Reflect::set(&window, &JsValue::from_str("Telegram"), &object);
            object
        });
    let web_view: JsValue = js_sys::Object::new().into();
    let _ = js_sys::Reflect::set(
        &web_view,
        &JsValue::from_str("receiveEvent"),
        receive.as_ref(),
    );
    let _ = js_sys::Reflect::set(&telegram, &JsValue::from_str("WebView"), &web_view);
    receive.forget();

    // Telegram Web: the parent posts '{"eventType":…,"eventData":…}' to this frame.
    let from_parent =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(|message: web_sys::MessageEvent| {
            let Some(window) = web_sys::window() else {
                return;
            };
            let Some(parent) = parent(&window) else {
                return;
            };
            let from_parent = message
                .source()
                .is_some_and(|source| js_sys::Object::is(source.as_ref(), parent.as_ref()));
            if !from_parent {
                return;
            }
            let Some(text) = message.data().as_string() else {
                return;
            };
            let Ok(parsed) = serde_json::from_str::<Value>(&text) else {
                return;
            };
            if let Some(event) = parsed.get("eventType").and_then(Value::as_str) {
                let data = parsed.get("eventData").cloned().unwrap_or(Value::Null);
                dispatch(event, &data);
            }
        });
    let _ =
        window.add_event_listener_with_callback("message", from_parent.as_ref().unchecked_ref());
    from_parent.forget();
}

/// `web_app_ready` and `web_app_expand`: the page is drawn; take the full height.
pub fn ready() {
    post("web_app_ready", Value::Null);
    post("web_app_expand", Value::Null);
}

pub fn close() {
    post("web_app_close", Value::Null);
}

pub fn back_button(visible: bool) {
    post(
        "web_app_setup_back_button",
        json!({ "is_visible": visible }),
    );
}

/// Shows (with `text`) or hides the main button at the bottom of the Mini App.
pub fn main_button(text: Option<&str>, color: Option<&str>, text_color: Option<&str>) {
    let data = match text {
        Some(text) => json!({
            "is_visible": true,
            "is_active": true,
            "is_progress_visible": false,
            "text": text,
            "color": color.unwrap_or("#2481cc"),
            "text_color": text_color.unwrap_or("#ffffff"),
        }),
        None => json!({ "is_visible": false }),
    };
    post("web_app_setup_main_button", data);
}

#[derive(Debug, Clone, Copy)]
pub enum Haptic {
    Success,
    Error,
    Light,
}

pub fn haptic(kind: Haptic) {
    let data = match kind {
        Haptic::Success => json!({ "type": "notification", "notification_type": "success" }),
        Haptic::Error => json!({ "type": "notification", "notification_type": "error" }),
        Haptic::Light => json!({ "type": "impact", "impact_style": "light" }),
    };
    post("web_app_trigger_haptic_feedback", data);
}

/// Opens `url` in the system browser (outside Telegram); `false` when no client took it.
pub fn open_link(url: &str) -> bool {
    post("web_app_open_link", json!({ "url": url }))
}
