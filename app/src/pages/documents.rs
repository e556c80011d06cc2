//! The documents page: upload files, and see every document with its state, type, key fields
//! and a download link. While anything is still being processed, the list refreshes itself.

use leptos::prelude::*;

use crate::documents::{DeleteDocument, DocStatus, DocumentSummary, UploadReceipt, list_documents};
use crate::error::ApiError;
use crate::pages::auth::{error_view, use_user};
use crate::pages::{size_label, use_mounted};
use crate::rag::{Answer, Ask};

#[component]
pub fn DocumentsPage() -> impl IntoView {
    let user = use_user();
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                user.0
                    .get()
                    .map(|result| match result {
                        Ok(Some(_)) => view! { <Documents /> }.into_any(),
                        Ok(None) => {
                            view! {
                                <section class="card">
                                    <h1>"Documents"</h1>
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

fn status_label(status: DocStatus) -> &'static str {
    match status {
        DocStatus::Queued => "Queued",
        DocStatus::Processing => "Processing…",
        DocStatus::Processed => "Processed",
        DocStatus::Failed => "Failed",
        DocStatus::Unsupported => "Not supported",
    }
}

#[component]
fn Documents() -> impl IntoView {
    // Bumped after an upload or a deletion, and by the poll while anything is pending.
    let version = RwSignal::new(0u32);
    // Fetched and shown in the browser only, after hydration: the list changes by the second
    // while documents are processed, so a server-rendered copy could differ from the one the
    // browser reads, and hydration would fail on the difference.
    let documents = LocalResource::new(move || {
        version.track();
        list_documents()
    });
    let mounted = use_mounted();
    let uploaded: RwSignal<Option<Result<Vec<UploadReceipt>, ApiError>>> = RwSignal::new(None);
    let uploading = RwSignal::new(false);
    let deleting = ServerAction::<DeleteDocument>::new();
    Effect::new(move |_| {
        if deleting.value().get().is_some() {
            version.update(|v| *v += 1);
        }
    });
    #[cfg(feature = "hydrate")]
    {
        use std::time::Duration;
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
            Duration::from_secs(2),
        );
        if let Ok(handle) = poll {
            on_cleanup(move || handle.clear());
        }
    }
    let on_submit = move |event: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            event.prevent_default();
            let Some(form) = event
                .target()
                .and_then(|target| target.dyn_into::<web_sys::HtmlFormElement>().ok())
            else {
                return;
            };
            let Ok(data) = web_sys::FormData::new_with_form(&form) else {
                return;
            };
            uploading.set(true);
            leptos::task::spawn_local(async move {
                let result = crate::documents::upload_documents(data.into()).await;
                if result.is_ok() {
                    form.reset();
                }
                uploaded.set(Some(result));
                uploading.set(false);
                version.update(|v| *v += 1);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = event;
    };

    view! {
        <section class="card" aria-labelledby="upload-heading">
            <h1>"Documents"</h1>
            <h2 id="upload-heading">"Upload"</h2>
            <form
                method="post"
                action="/api/documents/upload"
                enctype="multipart/form-data"
                on:submit=on_submit
            >
                <label for="file">"Files (PDF, images, text, HTML, DOCX)"</label>
                <input id="file" type="file" name="file" multiple required />
                <button type="submit" disabled=move || uploading.get()>
                    {move || if uploading.get() { "Uploading…" } else { "Upload" }}
                </button>
            </form>
            {move || {
                uploaded
                    .get()
                    .map(|result| match result {
                        Ok(receipts) => {
                            view! {
                                <ul class="receipts" role="status">
                                    {receipts
                                        .into_iter()
                                        .map(|receipt| {
                                            let name = receipt.document.file_name.clone();
                                            if receipt.duplicate {
                                                view! {
                                                    <li>{name} " is already in your archive."</li>
                                                }
                                                    .into_any()
                                            } else {
                                                view! { <li>"Uploaded " {name} ", processing…"</li> }
                                                    .into_any()
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(error) => error_view(error).into_any(),
                    })
            }}
        </section>
        <AskBox />
        <section class="card" aria-labelledby="list-heading">
            <h2 id="list-heading">"Your archive"</h2>
            {move || {
                let loading = || view! { <p class="muted">"Loading…"</p> }.into_any();
                if !mounted.get() {
                    return loading();
                }
                match documents.get() {
                    None => loading(),
                    Some(Ok(list)) if list.is_empty() => {
                        view! {
                            <p class="muted">
                                "Nothing here yet. Upload a file, or send one to the Telegram bot."
                            </p>
                        }
                            .into_any()
                    }
                    Some(Ok(list)) => {
                        view! {
                            <ul class="documents">
                                {list
                                    .into_iter()
                                    .map(|document| view! { <DocumentRow document deleting /> })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                    Some(Err(error)) => error_view(error).into_any(),
                }
            }}
        </section>
    }
}

#[component]
fn DocumentRow(document: DocumentSummary, deleting: ServerAction<DeleteDocument>) -> impl IntoView {
    let id = document.id;
    let href = format!("/documents/{id}/file");
    let kind = match (document.status, document.doc_type) {
        (DocStatus::Processed, Some(doc_type)) => doc_type.label().to_owned(),
        (status, _) => status_label(status).to_owned(),
    };
    let status_class = match document.status {
        DocStatus::Processed => "badge ok",
        DocStatus::Failed | DocStatus::Unsupported => "badge error",
        DocStatus::Queued | DocStatus::Processing => "badge pending",
    };
    let pages = document.pages.map(|p| {
        if p == 1 {
            "1 page".to_owned()
        } else {
            format!("{p} pages")
        }
    });
    let details = [
        Some(size_label(document.size_bytes)),
        pages,
        Some(document.created_at.chars().take(10).collect()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    let name = document.file_name.clone();
    view! {
        <li class="document" data-status=document.status.as_str()>
            <div class="document-head">
                <a href=href download=document.file_name.clone()>
                    {document.file_name.clone()}
                </a>
                <span class=status_class>{kind}</span>
            </div>
            <p class="muted">{details}</p>
            {document
                .failure_reason
                .clone()
                .map(|reason| view! { <p class="error">{reason}</p> })}
            {(!document.key_fields.is_empty())
                .then(|| view! { <p class="fields">{document.key_fields.join(" · ")}</p> })}
            <button
                type="button"
                class="secondary small"
                aria-label=format!("Delete {name}")
                on:click=move |_| {
                    let confirmed = {
                        #[cfg(feature = "hydrate")]
                        {
                            window()
                                .confirm_with_message(&format!("Delete {name}?"))
                                .unwrap_or(false)
                        }
                        #[cfg(not(feature = "hydrate"))]
                        {
                            false
                        }
                    };
                    if confirmed {
                        deleting.dispatch(DeleteDocument { id });
                    }
                }
            >
                "Delete"
            </button>
        </li>
    }
}

/// Ask a question about one's documents; the answer quotes its sources, which link to the
/// original files.
#[component]
fn AskBox() -> impl IntoView {
    let ask = ServerAction::<Ask>::new();
    let question = RwSignal::new(String::new());
    let on_submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let text = question.get_untracked();
        if !text.trim().is_empty() {
            ask.dispatch(Ask {
                question: text,
                stream: None,
            });
        }
    };
    view! {
        <section class="card" aria-labelledby="ask-heading">
            <h2 id="ask-heading">"Ask your documents"</h2>
            <form on:submit=on_submit>
                <label for="question">"Question"</label>
                <input
                    id="question"
                    name="question"
                    type="text"
                    maxlength="1000"
                    required
                    placeholder="What is my passport number?"
                    bind:value=question
                />
                <button type="submit" disabled=move || ask.pending().get()>
                    {move || if ask.pending().get() { "Looking…" } else { "Ask" }}
                </button>
            </form>
            {move || {
                ask.value()
                    .get()
                    .map(|result| match result {
                        Ok(answer) => view! { <AnswerView answer /> }.into_any(),
                        Err(error) => error_view(error).into_any(),
                    })
            }}
        </section>
    }
}

#[component]
fn AnswerView(answer: Answer) -> impl IntoView {
    if !answer.found {
        return view! {
            <p class="answer" role="status">
                "I could not find this in your documents."
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
                    .map(|p| {
                        let text = p.text.clone();
                        let n = p.source;
                        view! {
                            <li>
                                <q>{text}</q>
                                " ["
                                {n}
                                "]"
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <h3>"Sources"</h3>
            <ol class="sources">
                {answer
                    .sources
                    .iter()
                    .map(|s| {
                        let href = format!("/documents/{}/file", s.document_id);
                        let label = format!("[{}] {} · page {}", s.n, s.file_name, s.page);
                        let name = s.file_name.clone();
                        view! {
                            <li>
                                // `download`: a file, not a page for the router to navigate to.
                                <a href=href download=name>
                                    {label}
                                </a>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        </div>
    }
    .into_any()
}
