//! The Mini App's screens. Everything here renders only after the shell signed in (or, for
//! `Connect`, found an unlinked Telegram user), so data is fetched in the browser with the
//! header session (`LocalResource`), never server-rendered.

use leptos::prelude::*;
use leptos_router::components::A;
use uuid::Uuid;

use super::{MiniApp, Phase, use_mini_app};
use crate::account::{Language, account_overview, delete_account, export_data, set_language};
use crate::auth::passkeys::{DeletePasskey, RenamePasskey, list_passkeys};
use crate::documents::{DocStatus, list_documents, send_to_chat};
use crate::error::ApiError;
use crate::notifications::{
    NotificationPreferences, get_notification_preferences, set_notification_preferences,
};
use crate::pages::auth::error_view;
use crate::pages::passkeys::PasskeyRow;
use crate::pages::{size_label, use_mounted};
use crate::rag::Answer;

fn app() -> MiniApp {
    use_mini_app().expect("inside the Mini App shell")
}

/// The language of a component used both in the Mini App and on the website.
fn lang() -> Language {
    use_mini_app().map_or(Language::En, |app| app.lang.get())
}

fn t(en: &'static str, ru: &'static str) -> &'static str {
    super::tr(lang(), en, ru)
}

#[cfg(feature = "hydrate")]
use super::bridge::{self, Haptic};

fn haptic_success() {
    #[cfg(feature = "hydrate")]
    bridge::haptic(Haptic::Success);
}

fn haptic_error() {
    #[cfg(feature = "hydrate")]
    bridge::haptic(Haptic::Error);
}

/// A screen's heading, with a way home for clients without Telegram's back button.
#[component]
fn ScreenHead(title: (&'static str, &'static str)) -> impl IntoView {
    view! {
        <header class="screen-head">
            <A href="/miniapp" attr:class="home-link">
                {move || t("‹ Dossier", "‹ Dossier")}
            </A>
            <h1>{move || t(title.0, title.1)}</h1>
        </header>
    }
}

/// The way forward for a Telegram user without an account: sign in to one or create one,
/// linked to this Telegram account in the same step.
#[component]
pub fn Connect() -> impl IntoView {
    let app = app();
    let create = RwSignal::new(false);
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let connect = Action::new_local(
        move |&(create, ref email, ref password): &(bool, String, String)| {
            let init_data = app.launch.get_untracked().init_data.unwrap_or_default();
            let (email, password) = (email.clone(), password.clone());
            async move { crate::auth::miniapp_connect(init_data, email, password, create).await }
        },
    );
    Effect::new(move |_| match connect.value().get() {
        Some(Ok(session)) => {
            #[cfg(feature = "hydrate")]
            crate::client::session::set_token(Some(session.token.clone()));
            haptic_success();
            app.phase.set(Phase::Ready(session.user));
        }
        Some(Err(_)) => haptic_error(),
        None => {}
    });
    let first_name = move || {
        app.launch.with(|launch| {
            launch
                .init_data
                .as_deref()
                .and_then(|data| {
                    data.split('&')
                        .find_map(|pair| pair.strip_prefix("user="))
                        .map(super::launch::decode)
                })
                .and_then(|user| serde_json::from_str::<serde_json::Value>(&user).ok())
                .and_then(|user| user.get("first_name")?.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
    };
    view! {
        <section class="screen connect">
            <h1>
                {move || app.tr("Welcome to Dossier", "Добро пожаловать в Dossier")}
                {move || {
                    let name = first_name();
                    (!name.is_empty()).then(|| format!(", {name}"))
                }}
            </h1>
            <p>
                {move || {
                    app.tr(
                        "Your Telegram account is not linked to a Dossier account yet. Sign in to link yours, or create one: it takes a moment.",
                        "Ваш Telegram ещё не привязан к аккаунту Dossier. Войдите, чтобы привязать свой, или создайте новый: это минута.",
                    )
                }}
            </p>
            <div class="tabs" role="tablist">
                <button
                    type="button"
                    role="tab"
                    aria-selected=move || (!create.get()).to_string()
                    on:click=move |_| create.set(false)
                >
                    {move || app.tr("I have an account", "У меня есть аккаунт")}
                </button>
                <button
                    type="button"
                    role="tab"
                    aria-selected=move || create.get().to_string()
                    on:click=move |_| create.set(true)
                >
                    {move || app.tr("Create an account", "Создать аккаунт")}
                </button>
            </div>
            <form on:submit=move |event| {
                event.prevent_default();
                connect.dispatch((create.get_untracked(), email.get_untracked(), password.get_untracked()));
            }>
                <label for="connect-email">{move || app.tr("Email", "Эл. почта")}</label>
                <input id="connect-email" type="email" required autocomplete="email" bind:value=email />
                <label for="connect-password">{move || app.tr("Password", "Пароль")}</label>
                <input
                    id="connect-password"
                    type="password"
                    required
                    minlength=move || if create.get() { "10" } else { "1" }
                    autocomplete=move || if create.get() { "new-password" } else { "current-password" }
                    bind:value=password
                />
                <button type="submit" disabled=move || connect.pending().get()>
                    {move || {
                        if create.get() {
                            app.tr("Create account and link", "Создать и привязать")
                        } else {
                            app.tr("Sign in and link", "Войти и привязать")
                        }
                    }}
                </button>
            </form>
            {move || connect.value().get().and_then(Result::err).map(error_view)}
            <p class="muted">
                {move || {
                    app.tr(
                        "Signed up with a passkey only? Open Settings on the website and link Telegram there.",
                        "Входите только по ключу доступа? Откройте настройки на сайте и привяжите Telegram там.",
                    )
                }}
            </p>
        </section>
    }
}

/// Home: who is signed in, a few numbers, and the other screens.
#[component]
pub fn MiniHome() -> impl IntoView {
    let app = app();
    let overview = LocalResource::new(account_overview);
    let links = [
        ("/miniapp/documents", ("Documents", "Документы")),
        ("/miniapp/preferences", ("Notifications", "Уведомления")),
        ("/miniapp/passkeys", ("Passkeys", "Ключи доступа")),
        ("/miniapp/language", ("Language", "Язык")),
        ("/miniapp/data", ("Your data", "Ваши данные")),
    ];
    view! {
        <section class="screen home">
            <h1>"Dossier"</h1>
            {move || match overview.get() {
                None => view! { <p class="muted">{app.tr("Loading…", "Загрузка…")}</p> }.into_any(),
                Some(Err(error)) => error_view(error).into_any(),
                Some(Ok(o)) => {
                    let telegram = o
                        .telegram
                        .as_ref()
                        .map(|tg| {
                            tg.username
                                .as_ref()
                                .map_or_else(|| tg.first_name.clone(), |u| format!("@{u}"))
                        });
                    view! {
                        <p class="account" data-testid="signed-in-as">
                            {app.tr("Signed in as ", "Вы вошли как ")}
                            <strong>{o.email.clone()}</strong>
                        </p>
                        {telegram
                            .map(|tg| {
                                view! {
                                    <p class="muted" data-testid="linked-telegram">
                                        {app.tr("Linked to Telegram ", "Привязан к Telegram ")}
                                        {tg}
                                    </p>
                                }
                            })}
                        <dl class="stats" data-testid="stats">
                            <div>
                                <dt>{app.tr("Documents", "Документы")}</dt>
                                <dd data-stat="documents">{o.documents}</dd>
                            </div>
                            <div>
                                <dt>{app.tr("Processed", "Обработано")}</dt>
                                <dd data-stat="processed">{o.processed}</dd>
                            </div>
                            <div>
                                <dt>{app.tr("In progress", "В работе")}</dt>
                                <dd data-stat="pending">{o.pending}</dd>
                            </div>
                            <div>
                                <dt>{app.tr("Failed", "С ошибкой")}</dt>
                                <dd data-stat="failed">{o.failed}</dd>
                            </div>
                            <div>
                                <dt>{app.tr("Stored", "Объём")}</dt>
                                <dd data-stat="storage">{size_label(o.storage_bytes)}</dd>
                            </div>
                            <div>
                                <dt>{app.tr("Passkeys", "Ключи")}</dt>
                                <dd data-stat="passkeys">{o.passkeys}</dd>
                            </div>
                        </dl>
                    }
                        .into_any()
                }
            }}
            <nav class="menu" aria-label="Dossier">
                {links
                    .into_iter()
                    .map(|(href, (en, ru))| {
                        view! {
                            <A href=href>
                                {move || app.tr(en, ru)}
                            </A>
                        }
                    })
                    .collect_view()}
            </nav>
        </section>
    }
}

/// Per-event switches for Telegram notifications, saved as they change. Used by the Mini App
/// and the website's settings page.
#[component]
pub fn NotificationPreferencesForm() -> impl IntoView {
    let current = LocalResource::new(get_notification_preferences);
    // The web settings page shows this form under a <Transition>: read nothing before mount.
    let mounted = use_mounted();
    let saved: RwSignal<Option<Result<NotificationPreferences, ApiError>>> = RwSignal::new(None);
    let save = move |preferences: NotificationPreferences| {
        leptos::task::spawn_local(async move {
            let result = set_notification_preferences(preferences).await;
            if result.is_ok() {
                #[cfg(feature = "hydrate")]
                bridge::haptic(Haptic::Light);
            }
            saved.set(Some(result));
        });
    };
    view! {
        <fieldset class="preferences">
            <legend>{move || t("Tell me in Telegram when…", "Сообщать в Telegram, когда…")}</legend>
            {move || match mounted.get().then(|| current.get()).flatten() {
                None => view! { <p class="muted">{t("Loading…", "Загрузка…")}</p> }.into_any(),
                Some(Err(error)) => error_view(error).into_any(),
                Some(Ok(loaded)) => {
                    let state = RwSignal::new(loaded);
                    view! {
                        <label class="switch">
                            <input
                                type="checkbox"
                                name="processed"
                                prop:checked=move || state.get().processed
                                on:change=move |event| {
                                    state.update(|p| p.processed = event_target_checked(&event));
                                    save(state.get_untracked());
                                }
                            />
                            {move || t("a document is processed", "документ обработан")}
                        </label>
                        <label class="switch">
                            <input
                                type="checkbox"
                                name="failed"
                                prop:checked=move || state.get().failed
                                on:change=move |event| {
                                    state.update(|p| p.failed = event_target_checked(&event));
                                    save(state.get_untracked());
                                }
                            />
                            {move || t("a document could not be processed", "документ не удалось обработать")}
                        </label>
                    }
                        .into_any()
                }
            }}
            {move || match saved.get() {
                Some(Ok(_)) => view! { <p class="ok" role="status">{t("Saved.", "Сохранено.")}</p> }.into_any(),
                Some(Err(error)) => error_view(error).into_any(),
                None => ().into_any(),
            }}
        </fieldset>
    }
}

#[component]
pub fn MiniPreferences() -> impl IntoView {
    view! {
        <section class="screen">
            <ScreenHead title=("Notifications", "Уведомления") />
            <NotificationPreferencesForm />
        </section>
    }
}

fn status_label(status: DocStatus) -> (&'static str, &'static str) {
    match status {
        DocStatus::Queued => ("Queued", "В очереди"),
        DocStatus::Processing => ("Processing…", "Обрабатывается…"),
        DocStatus::Processed => ("Processed", "Обработан"),
        DocStatus::Failed => ("Failed", "Ошибка"),
        DocStatus::Unsupported => ("Not supported", "Не поддерживается"),
    }
}

/// "Send to chat": the bot sends the original file into the person's Telegram chat.
#[component]
fn SendToChatButton(id: Uuid, name: String) -> impl IntoView {
    let send = Action::new_local(move |id: &Uuid| send_to_chat(*id));
    view! {
        <button
            type="button"
            class="secondary small"
            aria-label=format!("{} {name}", t("Send to chat:", "Отправить в чат:"))
            disabled=move || send.pending().get()
            on:click=move |_| {
                send.dispatch(id);
            }
        >
            {move || t("Send to chat", "Отправить в чат")}
        </button>
        {move || match send.value().get() {
            Some(Ok(())) => {
                haptic_success();
                view! { <span class="ok" role="status">{t("Sent to your chat.", "Отправлено в чат.")}</span> }
                    .into_any()
            }
            Some(Err(error)) => error_view(error).into_any(),
            None => ().into_any(),
        }}
    }
}

/// Documents: ask a question, search by name, type or field, see each one's state.
#[component]
pub fn MiniDocuments() -> impl IntoView {
    let app = app();
    let version = RwSignal::new(0u32);
    let documents = LocalResource::new(move || {
        version.track();
        list_documents()
    });
    #[cfg(feature = "hydrate")]
    {
        let poll = set_interval_with_handle(
            move || {
                let pending = documents
                    .get_untracked()
                    .and_then(Result::ok)
                    .is_some_and(|list| list.iter().any(|d| d.status.is_pending()));
                if pending {
                    version.update(|v| *v += 1);
                }
            },
            std::time::Duration::from_secs(2),
        );
        if let Ok(handle) = poll {
            on_cleanup(move || handle.clear());
        }
    }
    let search = RwSignal::new(String::new());
    let question = RwSignal::new(String::new());
    let ask = Action::new_local(move |q: &String| crate::rag::ask(q.clone(), None));
    view! {
        <section class="screen documents">
            <ScreenHead title=("Documents", "Документы") />
            <form
                class="ask"
                on:submit=move |event| {
                    event.prevent_default();
                    let q = question.get_untracked();
                    if !q.trim().is_empty() {
                        ask.dispatch(q);
                    }
                }
            >
                <label for="mini-question">{move || app.tr("Ask your documents", "Спросите о документах")}</label>
                <input
                    id="mini-question"
                    type="text"
                    maxlength="1000"
                    required
                    placeholder=move || app.tr("What is my passport number?", "Какой номер моего паспорта?")
                    bind:value=question
                />
                <button type="submit" disabled=move || ask.pending().get()>
                    {move || if ask.pending().get() { app.tr("Looking…", "Ищем…") } else { app.tr("Ask", "Спросить") }}
                </button>
            </form>
            {move || {
                ask.value()
                    .get()
                    .map(|result| match result {
                        Ok(answer) => view! { <MiniAnswer answer /> }.into_any(),
                        Err(error) => error_view(error).into_any(),
                    })
            }}
            <label for="mini-search">{move || app.tr("Find", "Найти")}</label>
            <input
                id="mini-search"
                type="search"
                placeholder=move || app.tr("Name, type or field", "Имя, тип или поле")
                bind:value=search
            />
            {move || {
                let needle = search.get().to_lowercase();
                match documents.get() {
                    None => view! { <p class="muted">{app.tr("Loading…", "Загрузка…")}</p> }.into_any(),
                    Some(Err(error)) => error_view(error).into_any(),
                    Some(Ok(list)) if list.is_empty() => {
                        view! {
                            <p class="muted">
                                {app.tr("Nothing here yet: send a file to the bot.", "Пока пусто: отправьте файл боту.")}
                            </p>
                        }
                            .into_any()
                    }
                    Some(Ok(list)) => {
                        let lang = app.lang.get();
                        let shown: Vec<_> = list
                            .into_iter()
                            .filter(|d| {
                                needle.is_empty()
                                    || d.file_name.to_lowercase().contains(&needle)
                                    || d.doc_type.is_some_and(|ty| {
                                        ty.label().to_lowercase().contains(&needle)
                                            || ty.label_ru().to_lowercase().contains(&needle)
                                    })
                                    || d.key_fields.iter().any(|f| f.to_lowercase().contains(&needle))
                            })
                            .collect();
                        if shown.is_empty() {
                            return view! { <p class="muted">{app.tr("No document matches.", "Ничего не найдено.")}</p> }
                                .into_any();
                        }
                        view! {
                            <ul class="documents">
                                {shown
                                    .into_iter()
                                    .map(|d| {
                                        let (en, ru) = status_label(d.status);
                                        let kind = match (d.status, d.doc_type) {
                                            (DocStatus::Processed, Some(ty)) => {
                                                if lang == Language::Ru { ty.label_ru() } else { ty.label() }
                                            }
                                            _ => super::tr(lang, en, ru),
                                        };
                                        view! {
                                            <li class="document" data-status=d.status.as_str()>
                                                <div class="document-head">
                                                    <strong>{d.file_name.clone()}</strong>
                                                    <span class="badge">{kind}</span>
                                                </div>
                                                {(!d.key_fields.is_empty())
                                                    .then(|| view! { <p class="fields">{d.key_fields.join(" · ")}</p> })}
                                                {d.failure_reason.clone().map(|r| view! { <p class="error">{r}</p> })}
                                                <SendToChatButton id=d.id name=d.file_name.clone() />
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                }
            }}
        </section>
    }
}

#[component]
fn MiniAnswer(answer: Answer) -> impl IntoView {
    if !answer.found {
        return view! {
            <p class="answer" role="status">
                {t("I could not find this in your documents.", "В ваших документах этого не нашлось.")}
            </p>
        }
        .into_any();
    }
    view! {
        <div class="answer" role="status">
            {answer.generated.clone().map(|text| view! { <p class="generated">{text}</p> })}
            <ul class="passages">
                {answer
                    .passages
                    .iter()
                    .map(|p| view! { <li><q>{p.text.clone()}</q> " [" {p.source} "]"</li> })
                    .collect_view()}
            </ul>
            <ol class="sources">
                {answer
                    .sources
                    .iter()
                    .map(|s| {
                        let label = format!("[{}] {} · {} {}", s.n, s.file_name, t("page", "стр."), s.page);
                        view! {
                            <li>
                                {label}
                                " "
                                <SendToChatButton id=s.document_id name=s.file_name.clone() />
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        </div>
    }
    .into_any()
}

/// Whether this WebView offers WebAuthn at all.
fn webauthn_available() -> bool {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window().is_some_and(|window| {
            js_sys::Reflect::has(
                &window,
                &wasm_bindgen::JsValue::from_str("PublicKeyCredential"),
            )
            .unwrap_or(false)
        })
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

/// How adding a passkey went.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Adding {
    Idle,
    Working,
    /// Added in the WebView: haptic, and "Done" closes the Mini App.
    Added(String),
    /// No WebAuthn here: finishing in the system browser, which was opened at `url`.
    InBrowser {
        setup: Uuid,
        url: String,
    },
    AddedInBrowser(String),
    Failed(ApiError),
}

#[component]
pub fn MiniPasskeys() -> impl IntoView {
    let app = app();
    let rename = ServerAction::<RenamePasskey>::new();
    let delete = ServerAction::<DeletePasskey>::new();
    let refresh = RwSignal::new(0u32);
    let passkeys = LocalResource::new(move || {
        refresh.track();
        rename.version().track();
        delete.version().track();
        list_passkeys()
    });
    let name = RwSignal::new(String::from("Telegram"));
    let adding = RwSignal::new(Adding::Idle);

    let fall_back_to_browser = move || {
        leptos::task::spawn_local(async move {
            match crate::auth::passkeys::create_passkey_setup_link().await {
                Ok(link) => {
                    #[cfg(feature = "hydrate")]
                    bridge::open_link(&link.url);
                    adding.set(Adding::InBrowser {
                        setup: link.setup,
                        url: link.url,
                    });
                }
                Err(error) => adding.set(Adding::Failed(error)),
            }
        });
    };
    let add = move || {
        adding.set(Adding::Working);
        if !webauthn_available() {
            fall_back_to_browser();
            return;
        }
        leptos::task::spawn_local(async move {
            match crate::auth::passkeys::register_passkey(name.get_untracked()).await {
                Ok(passkey) => {
                    haptic_success();
                    refresh.update(|v| *v += 1);
                    adding.set(Adding::Added(passkey.name));
                }
                Err(ApiError::Validation { message, .. })
                    if message == crate::auth::passkeys::UNSUPPORTED =>
                {
                    fall_back_to_browser();
                }
                Err(error) => {
                    haptic_error();
                    adding.set(Adding::Failed(error));
                }
            }
        });
    };

    // While the browser is finishing the setup: ask every 2 s how it went.
    #[cfg(feature = "hydrate")]
    {
        use crate::auth::passkeys::PasskeySetupStatus;
        let poll = set_interval_with_handle(
            move || {
                let Adding::InBrowser { setup, .. } = adding.get_untracked() else {
                    return;
                };
                leptos::task::spawn_local(async move {
                    match crate::auth::passkeys::get_passkey_setup_status(setup).await {
                        Ok(PasskeySetupStatus::Done { name }) => {
                            haptic_success();
                            refresh.update(|v| *v += 1);
                            adding.set(Adding::AddedInBrowser(name));
                        }
                        Ok(PasskeySetupStatus::Expired) => {
                            adding.set(Adding::Failed(ApiError::validation(
                                "the setup link expired before the passkey was added; try again",
                            )))
                        }
                        Ok(_) | Err(_) => {}
                    }
                });
            },
            std::time::Duration::from_secs(2),
        );
        if let Ok(handle) = poll {
            on_cleanup(move || handle.clear());
        }
    }

    // "Done" as Telegram's main button once a passkey was added here.
    #[cfg(feature = "hydrate")]
    {
        Effect::new(move |_| {
            let done = matches!(adding.get(), Adding::Added(_) | Adding::AddedInBrowser(_));
            let (color, text_color) = app.launch.with_untracked(|l| {
                (
                    l.theme.get("button_color").cloned(),
                    l.theme.get("button_text_color").cloned(),
                )
            });
            if done {
                bridge::main_button(
                    Some(app.tr("Done", "Готово")),
                    color.as_deref(),
                    text_color.as_deref(),
                );
            } else {
                bridge::main_button(None, None, None);
            }
        });
        let pressed = bridge::on("main_button_pressed", move |_| {
            if matches!(
                adding.get_untracked(),
                Adding::Added(_) | Adding::AddedInBrowser(_)
            ) {
                bridge::close();
            }
        });
        on_cleanup(move || {
            bridge::off(pressed);
            bridge::main_button(None, None, None);
        });
    }

    view! {
        <section class="screen passkeys">
            <ScreenHead title=("Passkeys", "Ключи доступа") />
            <p class="muted">
                {move || {
                    app.tr(
                        "Sign in to Dossier on the web with your fingerprint, face or device PIN.",
                        "Входите в Dossier на сайте по отпечатку, лицу или PIN-коду устройства.",
                    )
                }}
            </p>
            {move || match passkeys.get() {
                None => view! { <p class="muted">{app.tr("Loading…", "Загрузка…")}</p> }.into_any(),
                Some(Err(error)) => error_view(error).into_any(),
                Some(Ok(list)) if list.is_empty() => {
                    view! { <p class="muted">{app.tr("You have no passkeys yet.", "Ключей доступа пока нет.")}</p> }
                        .into_any()
                }
                Some(Ok(list)) => {
                    view! {
                        <ul class="passkey-list">
                            {list
                                .into_iter()
                                .map(|passkey| view! { <PasskeyRow passkey rename delete /> })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                }
            }}
            {move || rename.value().get().and_then(Result::err).map(error_view)}
            {move || delete.value().get().and_then(Result::err).map(error_view)}
            {move || match adding.get() {
                Adding::Added(added) | Adding::AddedInBrowser(added) => {
                    view! {
                        <div class="done" role="status">
                            <p class="ok">
                                {app.tr("Passkey “", "Ключ «")}
                                {added}
                                {app.tr("” added.", "» добавлен.")}
                            </p>
                            <super::CloseButton label=("Done", "Готово") />
                        </div>
                    }
                        .into_any()
                }
                Adding::InBrowser { url, .. } => {
                    view! {
                        <div class="in-browser" role="status">
                            <p>
                                {app.tr(
                                    "This Telegram app cannot create passkeys itself, so your browser was opened to finish. Come back here when it is done.",
                                    "Это приложение Telegram не умеет создавать ключи доступа, поэтому открыт браузер. Вернитесь сюда, когда закончите.",
                                )}
                            </p>
                            <p class="muted">
                                {app.tr("Browser did not open? ", "Браузер не открылся? ")}
                                <a href=url target="_blank" rel="noopener">
                                    {app.tr("Open the setup page", "Открыть страницу настройки")}
                                </a>
                            </p>
                        </div>
                    }
                        .into_any()
                }
                state => {
                    let working = state == Adding::Working;
                    let failed = match state {
                        Adding::Failed(error) => Some(error),
                        _ => None,
                    };
                    view! {
                        <form
                            class="inline-form"
                            on:submit=move |event| {
                                event.prevent_default();
                                add();
                            }
                        >
                            <label for="mini-passkey-name">{app.tr("Name", "Название")}</label>
                            <input id="mini-passkey-name" required maxlength="64" bind:value=name />
                            <button type="submit" disabled=working>
                                {app.tr("Add a passkey", "Добавить ключ")}
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

#[component]
pub fn MiniLanguage() -> impl IntoView {
    let app = app();
    let overview = LocalResource::new(account_overview);
    let choose = Action::new_local(move |choice: &Option<Language>| {
        let choice = *choice;
        async move { set_language(choice.map(|l| l.code().to_owned())).await }
    });
    let telegram_language = move || {
        overview
            .get()
            .and_then(Result::ok)
            .and_then(|o| o.telegram_language)
    };
    let chosen = RwSignal::new(None::<Option<Language>>);
    Effect::new(move |_| {
        if let Some(Ok(o)) = overview.get() {
            chosen.set(Some(o.language));
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(choice)) = choose.value().get() {
            chosen.set(Some(choice));
            app.lang
                .set(Language::resolve(choice, telegram_language().as_deref()));
            haptic_success();
        }
    });
    let option = move |value: Option<Language>, label: String| {
        view! {
            <label class="choice">
                <input
                    type="radio"
                    name="language"
                    prop:checked=move || chosen.get() == Some(value)
                    on:change=move |_| {
                        choose.dispatch(value);
                    }
                />
                {label}
            </label>
        }
    };
    view! {
        <section class="screen">
            <ScreenHead title=("Language", "Язык") />
            <p class="muted">
                {move || app.tr("For the bot's messages and this app.", "Для сообщений бота и этого приложения.")}
            </p>
            <fieldset>
                {move || {
                    let follow = format!(
                        "{} ({})",
                        app.tr("Same as Telegram", "Как в Telegram"),
                        telegram_language().unwrap_or_else(|| "—".into())
                    );
                    option(None, follow)
                }}
                {Language::ALL
                    .into_iter()
                    .map(|language| option(Some(language), language.native_name().to_owned()))
                    .collect_view()}
            </fieldset>
            {move || choose.value().get().and_then(Result::err).map(error_view)}
        </section>
    }
}

/// "Export my data": a one-time link to a zip of every file plus `metadata.json`. In Telegram
/// the link opens in the system browser, which downloads it.
#[component]
pub fn ExportData() -> impl IntoView {
    let export = Action::new_local(|_: &()| export_data());
    Effect::new(move |_| {
        if let Some(Ok(link)) = export.value().get() {
            #[cfg(feature = "hydrate")]
            {
                if !bridge::open_link(&link.url)
                    && let Some(window) = web_sys::window()
                {
                    let _ = window.location().assign(&link.url);
                }
            }
            let _ = link;
        }
    });
    view! {
        <section class="export" aria-labelledby="export-heading">
            <h2 id="export-heading">{move || t("Export my data", "Выгрузить мои данные")}</h2>
            <p class="muted">
                {move || {
                    t(
                        "A zip of every original file and a metadata.json with what Dossier knows about them and you.",
                        "Архив zip со всеми исходными файлами и metadata.json со всем, что Dossier знает о них и о вас.",
                    )
                }}
            </p>
            <button
                type="button"
                disabled=move || export.pending().get()
                on:click=move |_| {
                    export.dispatch(());
                }
            >
                {move || t("Export", "Выгрузить")}
            </button>
            {move || match export.value().get() {
                Some(Ok(link)) => {
                    view! {
                        <p class="ok" role="status">
                            {t("Your export is downloading. Link not opened? ", "Выгрузка скачивается. Ссылка не открылась? ")}
                            <a href=link.url rel="external" data-testid="export-link">
                                {t("Download (works once, for 10 minutes)", "Скачать (один раз, 10 минут)")}
                            </a>
                        </p>
                    }
                        .into_any()
                }
                Some(Err(error)) => error_view(error).into_any(),
                None => ().into_any(),
            }}
        </section>
    }
}

/// "Delete my account", confirmed by typing the account's email.
#[component]
pub fn DeleteAccount(#[prop(into)] on_deleted: Callback<()>) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let email = RwSignal::new(String::new());
    let delete = Action::new_local(|email: &String| delete_account(email.clone()));
    Effect::new(move |_| match delete.value().get() {
        Some(Ok(())) => {
            #[cfg(feature = "hydrate")]
            crate::client::session::set_token(None);
            haptic_success();
            on_deleted.run(());
        }
        Some(Err(_)) => haptic_error(),
        None => {}
    });
    view! {
        <section class="delete-account" aria-labelledby="delete-heading">
            <h2 id="delete-heading">{move || t("Delete my account", "Удалить аккаунт")}</h2>
            <p class="muted">
                {move || {
                    t(
                        "Deletes your documents, files, search index, passkeys, sessions and the Telegram link. This cannot be undone.",
                        "Удаляет документы, файлы, поисковый индекс, ключи доступа, сеансы и привязку к Telegram. Отменить нельзя.",
                    )
                }}
            </p>
            <Show
                when=move || confirming.get()
                fallback=move || {
                    view! {
                        <button type="button" class="danger" on:click=move |_| confirming.set(true)>
                            {move || t("Delete my account…", "Удалить аккаунт…")}
                        </button>
                    }
                }
            >
                <form on:submit=move |event| {
                    event.prevent_default();
                    delete.dispatch(email.get_untracked());
                }>
                    <label for="confirm-email">
                        {move || t("Type your email to confirm", "Введите свою почту для подтверждения")}
                    </label>
                    <input id="confirm-email" type="email" required autocomplete="off" bind:value=email />
                    <button type="submit" class="danger" disabled=move || delete.pending().get()>
                        {move || t("Delete everything", "Удалить всё")}
                    </button>
                    <button type="button" class="secondary" on:click=move |_| confirming.set(false)>
                        {move || t("Keep my account", "Оставить аккаунт")}
                    </button>
                </form>
            </Show>
            {move || delete.value().get().and_then(Result::err).map(error_view)}
        </section>
    }
}

#[component]
pub fn MiniData() -> impl IntoView {
    let app = app();
    view! {
        <section class="screen">
            <ScreenHead title=("Your data", "Ваши данные") />
            <ExportData />
            <DeleteAccount on_deleted=move |()| app.phase.set(Phase::Deleted) />
        </section>
    }
}
