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
        <section class="passkeys" aria-labelledby="passkeys-heading">
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
fn PasskeyRow(
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
