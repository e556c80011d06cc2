//! The process-wide Prometheus recorder shared by the server and the bot. Metrics are global by
//! nature (one scrape endpoint per process), so the recorder is installed once and every router
//! the process builds renders the same handle.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `*_duration_seconds` and `*_seconds` family: 1 ms to 30 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The installed recorder's handle (installed on first call).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (only possible in odd test set-ups): keep a
                // detached one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The text exposition format, with its content type.
pub fn render(handle: &PrometheusHandle) -> ([(http::HeaderName, &'static str); 1], String) {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_families_render_with_their_labels() {
        let handle = prometheus();
        metrics::counter!("telemetry_test_total", "kind" => "a").increment(3);
        metrics::histogram!("telemetry_test_duration_seconds").record(0.002);
        let (_, text) = render(&handle);
        assert!(
            text.contains("telemetry_test_total{kind=\"a\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("telemetry_test_duration_seconds_bucket{le=\"0.0025\"} 1"),
            "{text}"
        );
    }
}
