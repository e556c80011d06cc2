//! The browser half of the passkey ceremonies: `navigator.credentials.create/get` via web-sys,
//! converting between the server's JSON options and the browser's binary structures with
//! webauthn-rs-proto's `wasm` conversions.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use crate::error::ApiError;

fn credentials() -> Result<web_sys::CredentialsContainer, ApiError> {
    let window = web_sys::window().ok_or_else(|| ApiError::validation("no browser window"))?;
    // Some WebViews (older Telegram clients) have no WebAuthn at all.
    let supported =
        js_sys::Reflect::has(&window, &JsValue::from_str("PublicKeyCredential")).unwrap_or(false);
    if !supported {
        return Err(ApiError::validation(super::UNSUPPORTED));
    }
    Ok(window.navigator().credentials())
}

/// Turns a rejected `navigator.credentials` promise into a message a person can act on.
fn browser_error(error: JsValue) -> ApiError {
    let name = js_sys::Reflect::get(&error, &JsValue::from_str("name"))
        .ok()
        .and_then(|name| name.as_string())
        .unwrap_or_default();
    let message = match name.as_str() {
        "NotAllowedError" => "the passkey prompt was cancelled or timed out",
        "InvalidStateError" => "this authenticator already holds a passkey for your account",
        "NotSupportedError" => super::UNSUPPORTED,
        "SecurityError" => "passkeys are not available on this address (use the site's domain)",
        _ => "the browser could not complete the passkey request",
    };
    ApiError::validation(message)
}

fn as_public_key_credential(value: JsValue) -> Result<web_sys::PublicKeyCredential, ApiError> {
    value
        .dyn_into::<web_sys::PublicKeyCredential>()
        .map_err(|_| ApiError::validation("the browser returned no passkey"))
}

pub async fn create_credential(
    options: CreationChallengeResponse,
) -> Result<RegisterPublicKeyCredential, ApiError> {
    let options: web_sys::CredentialCreationOptions = options.into();
    let promise = credentials()?
        .create_with_options(&options)
        .map_err(browser_error)?;
    let credential = JsFuture::from(promise).await.map_err(browser_error)?;
    Ok(as_public_key_credential(credential)?.into())
}

pub async fn get_credential(
    options: RequestChallengeResponse,
) -> Result<PublicKeyCredential, ApiError> {
    let options: web_sys::CredentialRequestOptions = options.into();
    let promise = credentials()?
        .get_with_options(&options)
        .map_err(browser_error)?;
    let credential = JsFuture::from(promise).await.map_err(browser_error)?;
    Ok(as_public_key_credential(credential)?.into())
}
