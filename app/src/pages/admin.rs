//! `/admin/traffic`: live NATS traffic for administrators. The first snapshot comes from the
//! `admin/traffic` server function (which also says whether the caller may look); after that
//! the page follows `/admin/traffic/events` (server-sent events, one snapshot a second).

use leptos::prelude::*;

use crate::admin::{TrafficSnapshot, get_traffic};
use crate::error::ApiError;
use crate::pages::auth::error_view;
use crate::pages::use_mounted;

#[component]
pub fn AdminTrafficPage() -> impl IntoView {
    let mounted = use_mounted();
    let first = LocalResource::new(get_traffic);
    let live: RwSignal<Option<TrafficSnapshot>> = RwSignal::new(None);
    let connected = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    {
        Effect::new(move |opened: Option<bool>| {
            if opened == Some(true) {
                return true;
            }
            let allowed = first.with(|first| matches!(first, Some(Ok(_))));
            if allowed {
                events::open(live, connected);
            }
            allowed
        });
        on_cleanup(events::close);
    }
    view! {
        <section class="card wide">
            <h1>"NATS traffic"</h1>
            {move || {
                if !mounted.get() {
                    return view! { <p class="muted">"Loading…"</p> }.into_any();
                }
                let shown: Option<Result<TrafficSnapshot, ApiError>> = match live.get() {
                    Some(snapshot) => Some(Ok(snapshot)),
                    None => first.get(),
                };
                match shown {
                    None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                    Some(Err(ApiError::Forbidden)) => {
                        view! {
                            <p class="error" role="alert">
                                "This page is for administrators."
                            </p>
                        }
                            .into_any()
                    }
                    Some(Err(ApiError::Unauthenticated)) => {
                        view! {
                            <p>"Please " <a href="/signin">"sign in"</a> " first."</p>
                        }
                            .into_any()
                    }
                    Some(Err(error)) => error_view(error).into_any(),
                    Some(Ok(snapshot)) => view! { <Traffic snapshot connected /> }.into_any(),
                }
            }}
        </section>
    }
}

#[component]
fn Traffic(snapshot: TrafficSnapshot, connected: RwSignal<bool>) -> impl IntoView {
    let subjects = snapshot.subjects;
    let consumers = snapshot.consumers;
    view! {
        <p class="muted" data-testid="traffic-live">
            {move || if connected.get() { "Live" } else { "Connecting…" }}
            {format!(" · counting for {} s", snapshot.counting_for_secs)}
        </p>
        <h2>"Subjects"</h2>
        {if subjects.is_empty() {
            view! { <p class="muted">"No messages yet."</p> }.into_any()
        } else {
            view! {
                <table class="traffic" data-testid="subjects">
                    <thead>
                        <tr>
                            <th scope="col">"Environment"</th>
                            <th scope="col">"Subject"</th>
                            <th scope="col">"msg/s (10 s)"</th>
                            <th scope="col">"last minute"</th>
                            <th scope="col">"total"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {subjects
                            .into_iter()
                            .map(|rate| {
                                let key = rate.subject.clone();
                                view! {
                                    <tr data-subject=key>
                                        <td>{rate.env}</td>
                                        <td>
                                            <code>{rate.subject}</code>
                                        </td>
                                        <td data-cell="rate">{format!("{:.1}", rate.per_sec)}</td>
                                        <td data-cell="minute">{rate.last_minute}</td>
                                        <td data-cell="total">{rate.total}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            }
                .into_any()
        }}
        <h2>"Consumers"</h2>
        {if consumers.is_empty() {
            view! { <p class="muted">"No JetStream consumers."</p> }.into_any()
        } else {
            view! {
                <table class="traffic" data-testid="consumers">
                    <thead>
                        <tr>
                            <th scope="col">"Stream"</th>
                            <th scope="col">"Consumer"</th>
                            <th scope="col">"pending"</th>
                            <th scope="col">"unacknowledged"</th>
                            <th scope="col">"redelivered"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {consumers
                            .into_iter()
                            .map(|lag| {
                                let key = format!("{}/{}", lag.stream, lag.consumer);
                                view! {
                                    <tr data-consumer=key>
                                        <td>{lag.stream}</td>
                                        <td>{lag.consumer}</td>
                                        <td data-cell="pending">{lag.pending}</td>
                                        <td data-cell="ack-pending">{lag.ack_pending}</td>
                                        <td>{lag.redelivered}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            }
                .into_any()
        }}
    }
}

#[cfg(feature = "hydrate")]
mod events {
    use std::cell::RefCell;

    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;

    use crate::admin::TrafficSnapshot;

    type Listeners = (
        web_sys::EventSource,
        Closure<dyn Fn(web_sys::MessageEvent)>,
        Closure<dyn Fn(web_sys::Event)>,
        Closure<dyn Fn(web_sys::Event)>,
    );

    thread_local! {
        static SOURCE: RefCell<Option<Listeners>> = const { RefCell::new(None) };
    }

    /// Follows the event stream; the browser reconnects by itself after a drop.
    pub fn open(live: RwSignal<Option<TrafficSnapshot>>, connected: RwSignal<bool>) {
        close();
        let Ok(source) = web_sys::EventSource::new("/admin/traffic/events") else {
            return;
        };
        let on_traffic =
            Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |message: web_sys::MessageEvent| {
                let Some(text) = message.data().as_string() else {
                    return;
                };
                if let Ok(snapshot) = serde_json::from_str::<TrafficSnapshot>(&text) {
                    connected.set(true);
                    live.set(Some(snapshot));
                }
            });
        let on_open = Closure::<dyn Fn(web_sys::Event)>::new(move |_| connected.set(true));
        let on_error = Closure::<dyn Fn(web_sys::Event)>::new(move |_| connected.set(false));
        let _ =
            source.add_event_listener_with_callback("traffic", on_traffic.as_ref().unchecked_ref());
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        SOURCE.with(|slot| *slot.borrow_mut() = Some((source, on_traffic, on_open, on_error)));
    }

    pub fn close() {
        SOURCE.with(|slot| {
            if let Some((source, ..)) = slot.borrow_mut().take() {
                source.close();
            }
        });
    }
}
