//! The settings page: linking Telegram (deep link with QR code and countdown; the page
//! notices the link by itself) and unlinking.

use leptos::prelude::*;

use crate::pages::auth::{error_view, use_user};
use crate::telegram::link::{CreateLinkToken, LinkToken, UnlinkTelegram, link_status};
use crate::telegram::push::{PushStatus, RequestPushLink, push_link_status};

#[component]
pub fn SettingsPage() -> impl IntoView {
    let user = use_user();
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                user.0
                    .get()
                    .map(|result| match result {
                        Ok(Some(_)) => {
                            view! {
                                <TelegramSettings />
                                <section class="card" aria-labelledby="notifications-heading">
                                    <h2 id="notifications-heading">"Notifications"</h2>
                                    <crate::miniapp::NotificationPreferencesForm />
                                </section>
                            }
                                .into_any()
                        }
                        Ok(None) => {
                            view! {
                                <section class="card">
                                    <h1>"Settings"</h1>
                                    <p>"Please " <a href="/signin">"sign in"</a> " first."</p>
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

#[component]
fn TelegramSettings() -> impl IntoView {
    let create = ServerAction::<CreateLinkToken>::new();
    let unlink = ServerAction::<UnlinkTelegram>::new();
    let status = Resource::new(move || unlink.version().get(), |_| link_status());
    // The token on screen, and the seconds it has left.
    let shown: RwSignal<Option<LinkToken>> = RwSignal::new(None);
    let left = RwSignal::new(0u64);
    Effect::new(move |_| {
        if let Some(Ok(token)) = create.value().get() {
            left.set(token.expires_in_secs);
            shown.set(Some(token));
        }
    });
    // While a link is on screen: count down, and ask every 2 s whether it was used.
    #[cfg(feature = "hydrate")]
    {
        use std::time::Duration;
        let tick = set_interval_with_handle(
            move || {
                if shown.get_untracked().is_none() {
                    return;
                }
                let now = left.get_untracked().saturating_sub(1);
                left.set(now);
                if now.is_multiple_of(2) {
                    status.refetch();
                }
            },
            Duration::from_secs(1),
        );
        if let Ok(handle) = tick {
            on_cleanup(move || handle.clear());
        }
    }
    // A push request on its way: its id, and what the page last heard about it.
    let push = ServerAction::<RequestPushLink>::new();
    let push_state: RwSignal<Option<(String, PushStatus)>> = RwSignal::new(None);
    let username = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(started)) = push.value().get() {
            push_state.set(Some((started.request_id, PushStatus::Pending)));
        }
    });
    #[cfg(feature = "hydrate")]
    {
        use std::time::Duration;
        let poll = set_interval_with_handle(
            move || {
                let Some((id, PushStatus::Pending)) = push_state.get_untracked() else {
                    return;
                };
                leptos::task::spawn_local(async move {
                    if let Ok(now) = push_link_status(id.clone()).await {
                        push_state.set(Some((id, now)));
                        if now == PushStatus::Approved {
                            status.refetch();
                        }
                    }
                });
            },
            Duration::from_secs(2),
        );
        if let Ok(handle) = poll {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = push_link_status;
    let linked = move || status.get().and_then(Result::ok).filter(|s| s.linked);
    Effect::new(move |_| {
        if linked().is_some() {
            shown.set(None);
        }
    });

    view! {
        <section class="card" aria-labelledby="telegram-heading">
            <h1>"Settings"</h1>
            <h2 id="telegram-heading">"Telegram"</h2>
            <Transition fallback=|| view! { <p class="muted">"Checking…"</p> }>
                {move || {
                    status
                        .get()
                        .map(|result| match result {
                            Ok(s) if s.linked => {
                                let name = match (&s.first_name, &s.username) {
                                    (Some(first), Some(user)) => format!("{first} (@{user})"),
                                    (Some(first), None) => first.clone(),
                                    (None, Some(user)) => format!("@{user}"),
                                    (None, None) => "your Telegram account".to_owned(),
                                };
                                view! {
                                    <p class="ok" role="status">
                                        "Telegram connected: " <strong>{name}</strong>
                                    </p>
                                    <button
                                        type="button"
                                        class="secondary"
                                        on:click=move |_| {
                                            unlink.dispatch(UnlinkTelegram {});
                                        }
                                    >
                                        "Unlink Telegram"
                                    </button>
                                }
                                    .into_any()
                            }
                            Ok(s) => {
                                // Someone opened one of this account's links: nothing is
                                // linked until they approve in Telegram.
                                let pending = s
                                    .pending
                                    .map(|p| {
                                        let who = match &p.username {
                                            Some(user) => format!("{} (@{user})", p.first_name),
                                            None => p.first_name.clone(),
                                        };
                                        let (lead, tail) = if p.declined {
                                            ("Declined in Telegram by ", ". Nothing was linked.")
                                        } else {
                                            (
                                                "Waiting for confirmation in Telegram from ",
                                                ". Nothing is linked until they press Approve; if this is not you, create no new link and let this one expire.",
                                            )
                                        };
                                        view! {
                                            <p class="muted" data-testid="link-pending" aria-live="polite">
                                                {lead} <strong>{who}</strong> {tail}
                                            </p>
                                        }
                                    });
                                view! {
                                    {pending}
                                    <p>
                                        "Link Telegram to send documents to the bot and ask questions in chat."
                                    </p>
                                    <button
                                        type="button"
                                        disabled=move || create.pending().get()
                                        on:click=move |_| {
                                            create.dispatch(CreateLinkToken {});
                                        }
                                    >
                                        {move || {
                                            if shown.get().is_some() {
                                                "New link"
                                            } else {
                                                "Link Telegram"
                                            }
                                        }}
                                    </button>
                <form
                    class="inline-form push-form"
                    on:submit=move |event| {
                        event.prevent_default();
                        push.dispatch(RequestPushLink {
                            username: username.get_untracked(),
                        });
                    }
                >
                    <label for="tg-username">"Or ask in Telegram — your username"</label>
                    <input
                        id="tg-username"
                        name="username"
                        placeholder="@username"
                        required
                        maxlength="33"
                        bind:value=username
                    />
                    <button type="submit" disabled=move || push.pending().get()>
                        "Send to Telegram"
                    </button>
                </form>
                                }
                                    .into_any()
                            }
                            Err(error) => error_view(error).into_any(),
                        })
                }}
            </Transition>
            {move || push.value().get().and_then(Result::err).map(error_view)}
            {move || {
                push_state
                    .get()
                    .map(|(_, state)| {
                        let text = match state {
                            PushStatus::Pending => "Sent, if that Telegram user has pressed Start in the bot and accepts requests: answer it in Telegram. Nothing arrived? Open the bot, press Start, and send again — or use the link above.",
                            PushStatus::Approved => "Approved in Telegram.",
                            PushStatus::Declined => "Declined in Telegram.",
                            PushStatus::Expired => "The request expired (5 minutes). Send a new one, or use the link above.",
                            PushStatus::Failed => "Approved, but not linked: that Telegram account or yours was linked meanwhile.",
                        };
                        view! { <p class="muted" data-testid="push-status">{text}</p> }
                    })
            }}
            {move || create.value().get().and_then(Result::err).map(error_view)}
            {move || unlink.value().get().and_then(Result::err).map(error_view)}
            {move || {
                shown
                    .get()
                    .map(|token| {
                        let expired = move || left.get() == 0;
                        view! {
                            <div class="link-token">
                                <p>
                                    "Open this link on the device where you use Telegram, and press "
                                    <strong>"Start"</strong> ":"
                                </p>
                                <p>
                                    <a href=token.url.clone() data-testid="deep-link" target="_blank" rel="noopener">
                                        {token.url.clone()}
                                    </a>
                                </p>
                                <div class="qr" inner_html=token.qr_svg.clone() aria-label="QR code of the link"></div>
                                <p class="muted" role="timer" aria-live="off">
                                    {move || {
                                        if expired() {
                                            "This link has expired. Create a new one.".to_owned()
                                        } else {
                                            let s = left.get();
                                            format!("Valid for {}:{:02}", s / 60, s % 60)
                                        }
                                    }}
                                </p>
                            </div>
                        }
                    })
            }}
        </section>
    }
}
