//! The Telegram Mini App under `/miniapp`: the same Leptos app, rendered by the server and
//! hydrated, for Telegram's WebView.
//!
//! The server cannot see the launch parameters (they are in the URL fragment), so it renders
//! a "starting" screen; after hydration the shell reads the fragment, applies the theme,
//! tells the client it is ready and signs in with the raw initData. The session then travels
//! in the `X-Dossier-Session` header (cookies are often blocked in Telegram Web's cross-site
//! iframe). Screens are drawn only once signed in, so nothing private is server-rendered.

pub mod launch;
mod screens;

#[cfg(feature = "hydrate")]
pub mod bridge;

use leptos::prelude::*;
use leptos_router::components::Outlet;

pub use screens::{
    DeleteAccount, ExportData, MiniData, MiniDocuments, MiniHome, MiniLanguage, MiniPasskeys,
    MiniPreferences, NotificationPreferencesForm,
};

use crate::account::Language;
use crate::auth::CurrentUser;
use crate::error::ApiError;

/// English or Russian, whichever the person reads.
pub fn tr(lang: Language, en: &'static str, ru: &'static str) -> &'static str {
    match lang {
        Language::En => en,
        Language::Ru => ru,
    }
}

/// Where the Mini App is.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Starting,
    /// Opened outside Telegram: there is no launch data.
    OutsideTelegram,
    /// The launch data was refused (stale, forged) or the server could not be reached.
    Refused(ApiError),
    /// A real Telegram user without a Dossier account (yet).
    NotLinked,
    Ready(CurrentUser),
    /// The account was just deleted.
    Deleted,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::OutsideTelegram => "outside-telegram",
            Self::Refused(_) => "refused",
            Self::NotLinked => "not-linked",
            Self::Ready(_) => "ready",
            Self::Deleted => "deleted",
        }
    }
}

/// The Mini App's shared state.
#[derive(Clone, Copy)]
pub struct MiniApp {
    pub phase: RwSignal<Phase>,
    pub lang: RwSignal<Language>,
    pub launch: RwSignal<launch::LaunchParams>,
}

impl MiniApp {
    pub fn tr(&self, en: &'static str, ru: &'static str) -> &'static str {
        tr(self.lang.get(), en, ru)
    }
}

pub fn use_mini_app() -> Option<MiniApp> {
    use_context::<MiniApp>()
}

/// The layout of every `/miniapp` route.
#[component]
pub fn MiniAppShell() -> impl IntoView {
    let app = MiniApp {
        phase: RwSignal::new(Phase::Starting),
        lang: RwSignal::new(Language::En),
        launch: RwSignal::new(launch::LaunchParams::default()),
    };
    provide_context(app);
    #[cfg(feature = "hydrate")]
    client::start(app);

    view! {
        <div class="miniapp" data-phase=move || app.phase.with(Phase::name)>
            {move || match app.phase.get() {
                Phase::Starting => {
                    view! { <p class="muted starting">{app.tr("Opening Dossier…", "Открываем Dossier…")}</p> }
                        .into_any()
                }
                Phase::OutsideTelegram => view! { <OutsideTelegram /> }.into_any(),
                Phase::Refused(error) => view! { <Refused error /> }.into_any(),
                Phase::NotLinked => view! { <screens::Connect /> }.into_any(),
                Phase::Ready(_) => view! { <Outlet /> }.into_any(),
                Phase::Deleted => {
                    view! {
                        <section class="screen" role="status">
                            <h1>{app.tr("Account deleted", "Аккаунт удалён")}</h1>
                            <p>
                                {app
                                    .tr(
                                        "Your account and everything in it are gone: documents, files, passkeys and the Telegram link.",
                                        "Ваш аккаунт и всё, что в нём было, удалены: документы, файлы, ключи доступа и привязка к Telegram.",
                                    )}
                            </p>
                            <CloseButton />
                        </section>
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

/// "Close": ends the Mini App in the Telegram client.
#[component]
pub fn CloseButton(#[prop(optional)] label: Option<(&'static str, &'static str)>) -> impl IntoView {
    let app = use_mini_app();
    let (en, ru) = label.unwrap_or(("Close", "Закрыть"));
    let text = move || app.map_or(en, |app| app.tr(en, ru));
    view! {
        <button
            type="button"
            class="close"
            on:click=move |_| {
                #[cfg(feature = "hydrate")]
                bridge::close();
            }
        >
            {text}
        </button>
    }
}

#[component]
fn OutsideTelegram() -> impl IntoView {
    let app = use_mini_app().expect("inside the Mini App shell");
    view! {
        <section class="screen">
            <h1>{move || app.tr("Open Dossier in Telegram", "Откройте Dossier в Telegram")}</h1>
            <p>
                {move || {
                    app.tr(
                        "This page is Dossier's Telegram Mini App. Open it from the bot's menu button in Telegram, or use the website.",
                        "Это мини-приложение Dossier для Telegram. Откройте его кнопкой меню бота в Telegram или воспользуйтесь сайтом.",
                    )
                }}
            </p>
            <p>
                <a href="/" rel="external">
                    {move || app.tr("Go to the website", "Перейти на сайт")}
                </a>
            </p>
        </section>
    }
}

#[component]
fn Refused(error: ApiError) -> impl IntoView {
    let app = use_mini_app().expect("inside the Mini App shell");
    let (title, body, retry) = match &error {
        ApiError::InitDataExpired => (
            app.tr("This page has expired", "Страница устарела"),
            app.tr(
                "Telegram's sign-in data is valid for a few minutes only. Close Dossier and open it again from the bot's menu.",
                "Данные входа от Telegram действуют лишь несколько минут. Закройте Dossier и откройте его снова из меню бота.",
            )
            .to_owned(),
            false,
        ),
        ApiError::Unauthenticated => (
            app.tr("Telegram could not be verified", "Не удалось проверить Telegram"),
            app.tr(
                "The launch data did not come from Telegram for this bot. Open Dossier from the bot's menu button in Telegram.",
                "Данные запуска пришли не от Telegram для этого бота. Откройте Dossier кнопкой меню бота в Telegram.",
            )
            .to_owned(),
            false,
        ),
        other => (
            app.tr("Dossier is not reachable", "Dossier недоступен"),
            other.to_string(),
            true,
        ),
    };
    view! {
        <section class="screen refused" role="alert" data-code=error.code()>
            <h1>{title}</h1>
            <p>{body}</p>
            {retry
                .then(|| {
                    view! {
                        <button
                            type="button"
                            on:click=move |_| {
                                #[cfg(feature = "hydrate")]
                                client::sign_in_again(app);
                            }
                        >
                            {app.tr("Try again", "Повторить")}
                        </button>
                    }
                })}
            <CloseButton />
        </section>
    }
}

/// Browser-only start-up: launch parameters, theme, the client bridge, sign-in.
#[cfg(feature = "hydrate")]
pub mod client {
    use std::collections::BTreeMap;

    use leptos::prelude::*;
    use leptos_router::hooks::{use_location, use_navigate};
    use wasm_bindgen::JsCast;

    use super::launch::{LaunchParams, css_variable, is_dark, normalize_color};
    use super::{MiniApp, Phase, bridge};
    use crate::account::Language;
    use crate::client::session;
    use crate::error::ApiError;

    const LAUNCH_KEY: &str = "dossier.launch";

    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.session_storage().ok().flatten()
    }

    /// This launch's parameters, with an earlier launch of the same tab filling the gaps.
    fn launch_params() -> LaunchParams {
        let fragment = web_sys::window()
            .and_then(|w| w.location().hash().ok())
            .unwrap_or_default();
        let earlier = storage()
            .and_then(|s| s.get_item(LAUNCH_KEY).ok().flatten())
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        let params = LaunchParams::from_fragment(&fragment).or(earlier);
        if let (Some(storage), Ok(json)) = (storage(), serde_json::to_string(&params)) {
            let _ = storage.set_item(LAUNCH_KEY, &json);
        }
        params
    }

    /// Telegram's colours as the CSS variables its own script would set, and the scheme.
    pub fn apply_theme(theme: &BTreeMap<String, String>) {
        let Some(root) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        else {
            return;
        };
        let style = root.style();
        for (key, color) in theme {
            let _ = style.set_property(&css_variable(key), color);
        }
        if let Some(bg) = theme.get("bg_color") {
            let scheme = if is_dark(bg) { "dark" } else { "light" };
            let _ = root.set_attribute("data-color-scheme", scheme);
            let _ = style.set_property("color-scheme", scheme);
        }
    }

    pub fn start(app: MiniApp) {
        let navigate = use_navigate();
        // The screen a `startapp` link asked for, shown once signed in (once per launch:
        // only this launch's own fragment counts, not one remembered from earlier).
        let start_screen = RwSignal::new(None::<&'static str>);
        // The fragment is read after hydration, so the server-rendered screen matches.
        Effect::new(move |_| {
            let fragment = web_sys::window()
                .and_then(|w| w.location().hash().ok())
                .unwrap_or_default();
            start_screen.set(LaunchParams::from_fragment(&fragment).start_screen());
            let params = launch_params();
            apply_theme(&params.theme);
            if let Some(lang) = params.language_hint().as_deref().and_then(Language::parse) {
                app.lang.set(lang);
            }
            app.launch.set(params);
            bridge::on("theme_changed", |data| {
                if let Some(serde_json::Value::Object(map)) = data.get("theme_params") {
                    let theme: BTreeMap<String, String> = map
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), normalize_color(v.as_str()?)?)))
                        .collect();
                    apply_theme(&theme);
                }
            });
            bridge::ready();
            sign_in_again(app);
        });

        let location = use_location();
        Effect::new({
            let navigate = navigate.clone();
            move |_| {
                let ready = app.phase.with(|phase| matches!(phase, Phase::Ready(_)));
                if ready && let Some(screen) = start_screen.get() {
                    start_screen.set(None);
                    if location.pathname.get_untracked().trim_end_matches('/') == "/miniapp" {
                        navigate(screen, Default::default());
                    }
                }
            }
        });

        // Telegram's back button on every screen but home.
        Effect::new(move |_| {
            let ready = app.phase.with(|phase| matches!(phase, Phase::Ready(_)));
            let path = location.pathname.get();
            bridge::back_button(ready && path.trim_end_matches('/') != "/miniapp");
        });
        let back = bridge::on("back_button_pressed", move |_| {
            navigate("/miniapp", Default::default());
        });
        on_cleanup(move || bridge::off(back));
    }

    pub fn sign_in_again(app: MiniApp) {
        app.phase.set(Phase::Starting);
        leptos::task::spawn_local(async move {
            let phase = sign_in(&app.launch.get_untracked()).await;
            if let Phase::Ready(_) = phase
                && let Ok(overview) = crate::account::account_overview().await
            {
                app.lang.set(Language::resolve(
                    overview.language,
                    overview.telegram_language.as_deref(),
                ));
            }
            app.phase.set(phase);
        });
    }

    async fn sign_in(params: &LaunchParams) -> Phase {
        // A reload inside the Mini App keeps its session while it lasts.
        if session::token().is_some() {
            if let Ok(Some(user)) = crate::auth::get_current_user().await {
                return Phase::Ready(user);
            }
            session::set_token(None);
        }
        let Some(init_data) = params.init_data.clone() else {
            return Phase::OutsideTelegram;
        };
        match crate::auth::miniapp_sign_in(init_data).await {
            Ok(signed_in) => {
                session::set_token(Some(signed_in.token));
                Phase::Ready(signed_in.user)
            }
            Err(ApiError::TelegramNotLinked) => Phase::NotLinked,
            Err(error) => Phase::Refused(error),
        }
    }
}
