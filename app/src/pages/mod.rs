pub mod admin;
pub mod auth;
pub mod documents;
pub mod home;
pub mod passkeys;
pub mod settings;

use leptos::prelude::*;

/// `false` during server rendering and hydration, `true` once the page runs in the browser.
///
/// A `LocalResource` must not be read before this turns true when it sits under a
/// `<Suspense>`/`<Transition>`: on the server such a read makes the boundary give up and render
/// its fallback, in the browser it registers as pending during hydration, and the two sides can
/// disagree about which branch was rendered (an unrecoverable hydration error).
pub(crate) fn use_mounted() -> Signal<bool> {
    let mounted = RwSignal::new(false);
    Effect::new(move |_| mounted.set(true));
    mounted.into()
}

/// A byte count for people: `812 B`, `14 KB`, `3.2 MB`.
pub(crate) fn size_label(bytes: i64) -> String {
    let bytes = bytes.max(0) as f64;
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MB", bytes / (1024.0 * 1024.0))
    } else if bytes >= 1024.0 {
        format!("{:.0} KB", bytes / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::size_label;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size_label(-5), "0 B");
        assert_eq!(size_label(812), "812 B");
        assert_eq!(size_label(14 * 1024 + 100), "14 KB");
        assert_eq!(size_label(3 * 1024 * 1024 + 300 * 1024), "3.3 MB");
    }
}
