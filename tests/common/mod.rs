//! Helpers shared by integration tests (stages 1–2, and the sync tests).
#![allow(dead_code)]

pub mod drops;
pub mod sync_support;

use std::any::Any;
use std::sync::Once;

/// Marker put in every panic message these tests raise on purpose; the quiet
/// hook swallows the report of those panics (and of the library's "already
/// completed" panic, which tests provoke on purpose), and forwards any other
/// panic to the default hook so real failures still print.
pub const INTENTIONAL: &str = "[intentional]";

const LIBRARY_MESSAGES: &[&str] = &["resumed a generator that already completed"];

/// Installs, once per test binary, a panic hook that stays silent for
/// intentional panics. Panic hooks are process-global, so this one delegates
/// every other panic to the hook that was there before.
pub fn quiet_intentional_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = payload_str(info.payload());
            let quiet = msg.is_some_and(|m| {
                m.contains(INTENTIONAL) || LIBRARY_MESSAGES.iter().any(|l| m.contains(l))
            });
            if !quiet {
                previous(info);
            }
        }));
    });
}

/// The message of a panic payload, if it is a string.
pub fn payload_str(payload: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Some(s)
    } else {
        payload.downcast_ref::<String>().map(String::as_str)
    }
}

/// The message of a caught panic, or a placeholder naming its absence.
pub fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    payload_str(payload.as_ref())
        .map(str::to_owned)
        .unwrap_or_else(|| "<non-string panic payload>".to_owned())
}
