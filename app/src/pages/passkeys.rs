//! Passkey pieces of the sign-in and account pages.

use leptos::prelude::*;

use crate::auth::passkeys::{
    DeletePasskey, PasskeyInfo, RenamePasskey, list_passkeys, register_passkey,
    sign_in_with_passkey,
};
use crate::pages::auth::{after_sign_in, error_view};

/// "Sign in with a passkey": the browser offers the passkeys it holds for this site.
#[component]
pub fn PasskeySignIn() -> impl IntoView {
    let action = Action::new_unsync(|_: &()| sign_in_with_passkey());
    after_sign_in(action.value());
    view! {
        <div class="passkey-sign-in">
            <p class="muted divider">"or"</p>
            <button
                type="button"
                class="secondary"
                data-testid="passkey-sign-in"
                disabled=move || action.pending().get()
                on:click=move |_| {
                    action.dispatch(());
                }
            >
                "Sign in with a passkey"
            </button>
            {move || action.value().get().and_then(Result::err).map(error_view)}
        </div>
    }
}

fn day(at: time::OffsetDateTime) -> String {
    at.date().to_string()
}

/// The account page's passkey list: add, rename and delete.
#[component]
pub fn Passkeys() -> impl IntoView {
    let register = Action::new_unsync(|name: &String| register_passkey(name.clone()));
    let rename = ServerAction::<RenamePasskey>::new();
    let delete = ServerAction::<DeletePasskey>::new();
    let passkeys = Resource::new(
        move || {
            (
                register.version().get(),
                rename.version().get(),
                delete.version().get(),
            )
        },
        |_| list_passkeys(),
    );
    let name = RwSignal::new(String::from("My passkey"));
    Effect::new(move |_| {
        if let Some(Ok(_)) = register.value().get() {
            name.set(String::from("My passkey"));
        }
    });

    view! {
        <section class="passkeys-panel" aria-labelledby="passkeys-heading">
            <h2 id="passkeys-heading">"Passkeys"</h2>
            <p class="muted">
                "Sign in with your fingerprint, face or device PIN instead of a password."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading passkeys…"</p> }>
                {move || {
                    passkeys
                        .get()
                        .map(|result| match result {
                            Ok(list) if list.is_empty() => {
                                view! { <p class="muted">"You have no passkeys yet."</p> }
                                    .into_any()
                            }
                            Ok(list) => {
                                view! {
                                    <ul class="passkey-list">
                                        {list
                                            .into_iter()
                                            .map(|passkey| {
                                                view! { <PasskeyRow passkey rename delete /> }
                                            })
                                            .collect_view()}
                                    </ul>
                                }
                                    .into_any()
                            }
                            Err(error) => error_view(error).into_any(),
                        })
                }}
            </Transition>
            {move || rename.value().get().and_then(Result::err).map(error_view)}
            {move || delete.value().get().and_then(Result::err).map(error_view)}
            <form
                class="inline-form"
                on:submit=move |event| {
                    event.prevent_default();
                    register.dispatch(name.get_untracked());
                }
            >
                <label for="passkey-name">"Name"</label>
                <input
                    id="passkey-name"
                    name="name"
                    required
                    maxlength="64"
                    bind:value=name
                />
                <button type="submit" disabled=move || register.pending().get()>
                    "Add a passkey"
                </button>
            </form>
            {move || {
                register
                    .value()
                    .get()
                    .map(|result| match result {
                        Ok(added) => {
                            view! {
                                <p class="ok" role="status">
                                    "Passkey “" {added.name} "” added."
                                </p>
                            }
                                .into_any()
                        }
                        Err(error) => error_view(error).into_any(),
                    })
            }}
        </section>
    }
}

#[component]
pub fn PasskeyRow(
    passkey: PasskeyInfo,
    rename: ServerAction<RenamePasskey>,
    delete: ServerAction<DeletePasskey>,
) -> impl IntoView {
    let id = passkey.id;
    let editing = RwSignal::new(false);
    let confirming = RwSignal::new(false);
    let new_name = RwSignal::new(passkey.name.clone());
    let used = passkey.last_used_at.map_or_else(
        || "never used".to_owned(),
        |at| format!("last used {}", day(at)),
    );
    view! {
        <li class="passkey" data-testid="passkey">
            <Show
                when=move || editing.get()
                fallback={
                    let name = passkey.name.clone();
                    move || view! { <strong class="passkey-name">{name.clone()}</strong> }
                }
            >
                <form
                    class="inline-form"
                    on:submit=move |event| {
                        event.prevent_default();
                        rename
                            .dispatch(RenamePasskey {
                                id,
                                name: new_name.get_untracked(),
                            });
                        editing.set(false);
                    }
                >
                    <label class="visually-hidden" for=format!("rename-{id}")>
                        "New name"
                    </label>
                    <input id=format!("rename-{id}") required maxlength="64" bind:value=new_name />
                    <button type="submit">"Save"</button>
                    <button type="button" class="secondary" on:click=move |_| editing.set(false)>
                        "Cancel"
                    </button>
                </form>
            </Show>
            <span class="muted">" added " {day(passkey.created_at)} ", " {used}</span>
            <span class="actions">
                <Show
                    when=move || confirming.get()
                    fallback=move || {
                        view! {
                            <button
                                type="button"
                                class="secondary"
                                on:click=move |_| editing.set(true)
                            >
                                "Rename"
                            </button>
                            <button
                                type="button"
                                class="secondary"
                                on:click=move |_| confirming.set(true)
                            >
                                "Delete"
                            </button>
                        }
                    }
                >
                    <button
                        type="button"
                        class="danger"
                        on:click=move |_| {
                            delete.dispatch(DeletePasskey { id });
                            confirming.set(false);
                        }
                    >
                        "Yes, delete"
                    </button>
                    <button type="button" class="secondary" on:click=move |_| confirming.set(false)>
                        "Keep"
                    </button>
                </Show>
            </span>
        </li>
    }
}

/// `/passkeys/setup#<token>`: the system-browser half of adding a passkey for a Mini App whose
/// WebView has no WebAuthn. The token (one-time, ten minutes) is in the fragment, read only
/// in the browser.
#[component]
pub fn PasskeySetupPage() -> impl IntoView {
    use crate::auth::passkeys::{
        PasskeySetupStart, register_passkey_from_link, start_passkey_setup,
    };
    use crate::error::ApiError;

    let token = RwSignal::new(String::new());
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(hash) = web_sys::window().and_then(|w| w.location().hash().ok()) {
            token.set(hash.trim_start_matches('#').to_owned());
        }
    });
    let started: RwSignal<Option<PasskeySetupStart>> = RwSignal::new(None);
    let name = RwSignal::new(String::from("My passkey"));
    let add = Action::new_local(move |name: &String| {
        let name = name.clone();
        async move {
            let start = match started.get_untracked() {
                Some(start) => start,
                None => {
                    let start = start_passkey_setup(token.get_untracked()).await?;
                    started.set(Some(start.clone()));
                    start
                }
            };
            register_passkey_from_link(start, name).await
        }
    });
    let result = move || add.value().get();
    view! {
        <section class="card narrow">
            <h1>"Add a passkey"</h1>
            {move || {
                started
                    .get()
                    .map(|start| {
                        view! {
                            <p>"For " <strong>{start.email}</strong></p>
                        }
                    })
            }}
            {move || match result() {
                Some(Ok(added)) => {
                    view! {
                        <p class="ok" role="status">
                            "Passkey “" {added.name} "” added. You can go back to Telegram now."
                        </p>
                    }
                        .into_any()
                }
                other => {
                    let failed: Option<ApiError> = other.and_then(Result::err);
                    view! {
                        <p class="muted">
                            "Dossier in Telegram sent you here because its window cannot create passkeys. Add one here; the Mini App shows it when you return."
                        </p>
                        <form
                            class="inline-form"
                            on:submit=move |event| {
                                event.prevent_default();
                                add.dispatch(name.get_untracked());
                            }
                        >
                            <label for="setup-passkey-name">"Name"</label>
                            <input id="setup-passkey-name" required maxlength="64" bind:value=name />
                            <button type="submit" disabled=move || add.pending().get()>
                                "Add a passkey"
                            </button>
                        </form>
                        {failed.map(error_view)}
                    }
                        .into_any()
                }
            }}
        </section>
    }
}
