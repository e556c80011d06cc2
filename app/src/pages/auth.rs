//! Sign up, sign in and the account page.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::auth::{CurrentUser, SignIn, SignOut, SignUp};
use crate::error::ApiError;
use crate::pages::passkeys::{PasskeySignIn, Passkeys};

/// The signed-in person, shared by the whole app; refetched after sign-in and sign-out.
#[derive(Clone, Copy)]
pub struct UserResource(pub Resource<Result<Option<CurrentUser>, ApiError>>);

pub fn provide_user_resource() -> UserResource {
    let resource = UserResource(Resource::new(|| (), |()| crate::auth::get_current_user()));
    provide_context(resource);
    resource
}

pub fn use_user() -> UserResource {
    expect_context::<UserResource>()
}

pub fn error_view(error: ApiError) -> impl IntoView {
    view! { <p class="error" role="alert">{error.to_string()}</p> }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    after_sign_in(action.value());
    view! {
        <section class="card narrow">
            <h1>"Create your account"</h1>
            <ActionForm action=action>
                <label for="email">"Email"</label>
                <input id="email" type="email" name="email" required autocomplete="email" />
                <label for="password">"Password"</label>
                <input
                    id="password"
                    type="password"
                    name="password"
                    required
                    minlength="10"
                    autocomplete="new-password"
                />
                <p class="muted hint">"At least 10 characters."</p>
                <button type="submit" disabled=move || action.pending().get()>
                    "Create account"
                </button>
            </ActionForm>
            {move || action.value().get().and_then(Result::err).map(error_view)}
            <p class="muted">"Already have an account? " <a href="/signin">"Sign in"</a></p>
        </section>
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    after_sign_in(action.value());
    view! {
        <section class="card narrow">
            <h1>"Sign in"</h1>
            <ActionForm action=action>
                <label for="email">"Email"</label>
                <input id="email" type="email" name="email" required autocomplete="username" />
                <label for="password">"Password"</label>
                <input
                    id="password"
                    type="password"
                    name="password"
                    required
                    autocomplete="current-password"
                />
                <button type="submit" disabled=move || action.pending().get()>
                    "Sign in"
                </button>
            </ActionForm>
            {move || action.value().get().and_then(Result::err).map(error_view)}
            <PasskeySignIn />
            <p class="muted">"New here? " <a href="/signup">"Create an account"</a></p>
        </section>
    }
}

/// On a successful sign-in or sign-up: refresh who is signed in and go to the account page.
pub fn after_sign_in(value: impl Get<Value = Option<Result<CurrentUser, ApiError>>> + 'static) {
    let user = use_user();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = value.get() {
            user.0.refetch();
            navigate("/account", Default::default());
        }
    });
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let user = use_user();
    let sign_out = ServerAction::<SignOut>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(())) = sign_out.value().get() {
            user.0.refetch();
            navigate("/", Default::default());
        }
    });
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                user.0
                    .get()
                    .map(|result| match result {
                        Ok(Some(me)) => {
                            view! {
                                <section class="card">
                                    <h1>"Your account"</h1>
                                    <p>"Signed in as " <strong>{me.email.clone()}</strong></p>
                                    <p>
                                        <a href="/settings">"Settings: link Telegram"</a>
                                    </p>
                                    <Passkeys />
                                    <crate::miniapp::ExportData />
                                    <crate::miniapp::DeleteAccount on_deleted=|()| {
                                        // A full load: every part of the page forgets the account.
                                        #[cfg(feature = "hydrate")]
                                        if let Some(window) = web_sys::window() {
                                            let _ = window.location().assign("/");
                                        }
                                    } />
                                    <button
                                        type="button"
                                        class="secondary"
                                        on:click=move |_| {
                                            sign_out.dispatch(SignOut {});
                                        }
                                    >
                                        "Sign out"
                                    </button>
                                </section>
                            }
                                .into_any()
                        }
                        Ok(None) => {
                            view! {
                                <section class="card">
                                    <h1>"Your account"</h1>
                                    <p>"You are not signed in. " <a href="/signin">"Sign in"</a></p>
                                </section>
                            }
                                .into_any()
                        }
                        Err(error) => error_view(error).into_any(),
                    })
            }}
        </Transition>
    }
}

/// The sign-in / account links in the top bar.
#[component]
pub fn UserNav() -> impl IntoView {
    let user = use_user();
    view! {
        <nav aria-label="Account">
            <Transition fallback=|| ()>
                {move || {
                    user.0
                        .get()
                        .map(|result| match result {
                            Ok(Some(me)) => {
                                view! {
                                    <a href="/documents">"Documents"</a>
                                    <a href="/settings">"Settings"</a>
                                    {me
                                        .is_admin
                                        .then(|| view! { <a href="/admin/traffic">"Traffic"</a> })}
                                    <a href="/account" title=me.email.clone()>
                                        "Account"
                                    </a>
                                }
                                    .into_any()
                            }
                            _ => {
                                view! {
                                    <a href="/signin">"Sign in"</a>
                                    <a href="/signup">"Sign up"</a>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </nav>
    }
}
