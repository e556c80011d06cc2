//! Dossier's shared Leptos crate: pages, components and server functions (the whole API).
//! Backend services live behind `#[cfg(feature = "ssr")]`.

pub mod account;
pub mod admin;
pub mod auth;
pub mod client;
pub mod documents;
pub mod error;
pub mod miniapp;
pub mod notifications;
pub mod pages;
pub mod rag;
pub mod security;
pub mod system;
pub mod telegram;

#[cfg(feature = "ssr")]
pub mod adapters;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod events;
#[cfg(feature = "ssr")]
pub mod state;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::StaticSegment;
use leptos_router::components::{A, Outlet, ParentRoute, Route, Router, Routes};

use crate::miniapp::{
    MiniAppShell, MiniData, MiniDocuments, MiniHome, MiniLanguage, MiniPasskeys, MiniPreferences,
};
use crate::pages::admin::AdminTrafficPage;
use crate::pages::auth::{AccountPage, SignInPage, SignUpPage, UserNav, provide_user_resource};
use crate::pages::documents::DocumentsPage;
use crate::pages::home::HomePage;
use crate::pages::passkeys::PasskeySetupPage;
use crate::pages::settings::SettingsPage;

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    security::set_page_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.ico" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_user_resource();

    view! {
        <Stylesheet id="leptos" href="/pkg/dossier.css" />
        <Title text="Dossier" />
        <Router>
            <Routes fallback=NotFound>
                // The Telegram Mini App: its own layout, no site navigation.
                <ParentRoute path=StaticSegment("miniapp") view=MiniAppShell>
                    <Route path=StaticSegment("") view=MiniHome />
                    <Route path=StaticSegment("preferences") view=MiniPreferences />
                    <Route path=StaticSegment("documents") view=MiniDocuments />
                    <Route path=StaticSegment("passkeys") view=MiniPasskeys />
                    <Route path=StaticSegment("language") view=MiniLanguage />
                    <Route path=StaticSegment("data") view=MiniData />
                </ParentRoute>
                <ParentRoute path=StaticSegment("") view=WebLayout>
                    <Route path=StaticSegment("") view=HomePage />
                    <Route path=StaticSegment("signup") view=SignUpPage />
                    <Route path=StaticSegment("signin") view=SignInPage />
                    <Route path=StaticSegment("account") view=AccountPage />
                    <Route path=StaticSegment("settings") view=SettingsPage />
                    <Route path=StaticSegment("documents") view=DocumentsPage />
                    <Route
                        path=(StaticSegment("admin"), StaticSegment("traffic"))
                        view=AdminTrafficPage
                    />
                    <Route
                        path=(StaticSegment("passkeys"), StaticSegment("setup"))
                        view=PasskeySetupPage
                    />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// The website's frame: the top bar and the page.
#[component]
fn WebLayout() -> impl IntoView {
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">
                "Dossier"
            </A>
            <UserNav />
        </header>
        <main>
            <Outlet />
        </main>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main>
            <section class="card">
                <h1>"Page not found"</h1>
                <p>
                    <A href="/">"Back to the start"</A>
                </p>
            </section>
        </main>
    }
}
