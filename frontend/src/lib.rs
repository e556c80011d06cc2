//! The wasm entry point: hydrates the server-rendered page with the shared `app` crate.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // A marker for end-to-end tests (and curious humans): the page is interactive now.
    if let Some(body) = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| document.body())
    {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
