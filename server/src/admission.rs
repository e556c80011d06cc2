//! Admission control for the costly server functions: `rag/ask` (CPU) and `documents/upload`
//! (memory). Each has a number of slots (`Settings::admission`); a request that finds none
//! free is refused at once with 503 `busy` and `Retry-After`, before its body is buffered or
//! any work starts, so the requests admitted keep their latency and memory stays bounded.
//! Nothing queues: a queue would only turn overload into latency.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use app::config::AdmissionSettings;
use app::error::ApiError;

/// Seconds a shed caller is asked to wait.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Clone)]
pub struct Admission {
    questions: Arc<Semaphore>,
    uploads: Arc<Semaphore>,
}

impl Admission {
    pub fn new(settings: &AdmissionSettings) -> Self {
        Self {
            questions: Arc::new(Semaphore::new(settings.questions.max(1))),
            uploads: Arc::new(Semaphore::new(settings.uploads.max(1))),
        }
    }

    fn gate(&self, path: &str) -> Option<(&'static str, &Arc<Semaphore>)> {
        match path {
            "/api/rag/ask" => Some(("rag/ask", &self.questions)),
            "/api/documents/upload" => Some(("documents/upload", &self.uploads)),
            _ => None,
        }
    }
}

/// The middleware: holds a slot for the whole handling of a gated request.
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let Some((name, slots)) = admission.gate(request.uri().path()) else {
        return next.run(request).await;
    };
    match slots.clone().try_acquire_owned() {
        Ok(slot) => {
            let response = next.run(request).await;
            drop(slot);
            response
        }
        Err(_) => {
            metrics::counter!("dossier_shed_total", "fn" => name).increment(1);
            ApiError::Busy {
                retry_after_secs: RETRY_AFTER_SECS,
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_request_beyond_the_slots_is_shed_at_once_and_others_pass() {
        let admission = Admission::new(&AdmissionSettings {
            questions: 1,
            uploads: 1,
        });
        let release = Arc::new(tokio::sync::Notify::new());
        let entered = Arc::new(tokio::sync::Notify::new());
        let app = Router::new()
            .route(
                "/api/rag/ask",
                post({
                    let (release, entered) = (release.clone(), entered.clone());
                    move || async move {
                        entered.notify_one();
                        release.notified().await;
                        "answer"
                    }
                }),
            )
            .route("/api/other", post(|| async { "other" }))
            .layer(axum::middleware::from_fn_with_state(admission, admit));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                app.oneshot(Request::post(path).body(Body::empty()).expect("request"))
                    .await
                    .expect("response")
            }
        };
        let first = tokio::spawn(call("/api/rag/ask"));
        entered.notified().await;
        let shed = call("/api/rag/ask").await;
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");
        let body = axum::body::to_bytes(shed.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], br#"{"code":"busy","retry_after_secs":1}"#);
        // Other routes are not gated.
        assert_eq!(call("/api/other").await.status(), StatusCode::OK);
        release.notify_one();
        assert_eq!(first.await.expect("join").status(), StatusCode::OK);
        // The slot is free again.
        let again = tokio::spawn(call("/api/rag/ask"));
        entered.notified().await;
        release.notify_one();
        assert_eq!(again.await.expect("join").status(), StatusCode::OK);
    }
}
