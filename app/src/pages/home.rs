use leptos::prelude::*;

use crate::system::SystemStatus;

/// The landing page: what Dossier is, and a live check of the server behind it.
#[component]
pub fn HomePage() -> impl IntoView {
    let check = ServerAction::<SystemStatus>::new();
    let pending = check.pending();

    view! {
        <section class="hero">
            <h1>"Your papers, one message away"</h1>
            <p class="lead">
                "Send documents and photos to your Telegram bot. Dossier reads them, files them, "
                "and answers questions about them, with the original one tap away. "
                "Everything stays on your own server."
            </p>
        </section>
        <section class="card" aria-labelledby="status-heading">
            <h2 id="status-heading">"System status"</h2>
            <button
                type="button"
                on:click=move |_| {
                    check.dispatch(SystemStatus {});
                }
                disabled=move || pending.get()
            >
                "Check system status"
            </button>
            <div role="status" aria-live="polite" class="status">
                {move || match check.value().get() {
                    None => view! { <p class="muted">"Not checked yet."</p> }.into_any(),
                    Some(Ok(report)) => {
                        view! {
                            <dl class="status-list">
                                <dt>"Environment"</dt>
                                <dd>{report.environment.clone()}</dd>
                                <dt>"Database"</dt>
                                <dd data-up=report.database.to_string()>
                                    {if report.database { "PostgreSQL up" } else { "PostgreSQL down" }}
                                </dd>
                                <dt>"Events"</dt>
                                <dd data-up=report.nats.to_string()>
                                    {if report.nats {
                                        format!(
                                            "NATS up ({})",
                                            report.nats_server_version.clone().unwrap_or_default(),
                                        )
                                    } else {
                                        "NATS down".to_owned()
                                    }}
                                </dd>
                                <dt>"Version"</dt>
                                <dd>{report.version.clone()}</dd>
                            </dl>
                        }
                            .into_any()
                    }
                    Some(Err(error)) => {
                        view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()
                    }
                }}
            </div>
        </section>
    }
}
