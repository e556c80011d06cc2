//! The bot's local journal of messages it sent to Telegram but has not yet recorded through
//! the API: a status message sent for an update, a notification sent.
//!
//! Telegram has no idempotent send. The API keeps the lasting record (the update's
//! `reply_message_id`, the notification claim's `done_at`), but the API may be restarting, or
//! its database may be, for seconds: a bot killed in that time used to leave nothing behind,
//! and the process that took its work over sent the message again. The journal is written the
//! moment Telegram answers, on local disk (one small file per entry, written then renamed into
//! place, so an entry is whole or absent), and an entry is removed once the API has the
//! record. So a successor on the same host (a restarted process, a restarted container with the
//! same volume) finds what was sent and edits or skips instead of sending again. It survives
//! the process, not the host: a replica on another host falls back to the API's record.
//!
//! Entries are named by the bot's id, and by chat and update for status messages, or by a hash
//! of the notification id: nothing a person typed reaches a file name.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// Entries older than this are left-overs (Telegram keeps an update 24 hours, the
/// notification stream an hour) and are removed when the journal is opened.
pub const KEEP: Duration = Duration::from_secs(2 * 24 * 3600);

/// What an entry holds before its message id is known.
const INTENDED: &str = "sending";

/// What the journal knows of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Absent,
    /// About to be sent when its process ended: it may or may not have gone out.
    Intended,
    Sent(i32),
}

#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
}

/// What an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// The status message sent in `chat` about update `update_id`.
    Reply { chat: i64, update_id: i64 },
    /// A notification (by its id) sent.
    Notification(&'a str),
}

impl Entry<'_> {
    fn file_name(&self) -> String {
        match self {
            Self::Reply { chat, update_id } => format!("reply.{chat}.{update_id}"),
            Self::Notification(id) => {
                format!("sent.{}", &hex::encode(Sha256::digest(id.as_bytes()))[..32])
            }
        }
    }
}

impl Journal {
    /// Opens (creating it if needed) the journal of bot `bot_id` under `dir`, and removes
    /// entries older than `KEEP`.
    pub fn open(dir: &Path, bot_id: u64) -> std::io::Result<Self> {
        let dir = dir.join(format!("bot-{bot_id}"));
        std::fs::create_dir_all(&dir)?;
        let journal = Self { dir };
        let removed = journal.prune(KEEP);
        if removed > 0 {
            tracing::info!(removed, "old journal entries removed");
        }
        Ok(journal)
    }

    fn write(&self, entry: Entry<'_>, value: &str) {
        let name = entry.file_name();
        let temporary = self.dir.join(format!(".{name}.{}", std::process::id()));
        let written = std::fs::write(&temporary, value)
            .and_then(|()| std::fs::rename(&temporary, self.dir.join(&name)));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            tracing::warn!(%error, entry = %name, "the journal could not be written");
        }
    }

    /// Records that a message for `entry` is about to be sent: if this process dies before
    /// `record`, its successor knows the message may have gone out (Telegram has no
    /// idempotent send: that moment cannot be closed, only made known).
    pub fn intend(&self, entry: Entry<'_>) {
        self.write(entry, INTENDED);
    }

    /// Records that `message_id` was sent for `entry`. Best effort: a journal that cannot be
    /// written is logged, and the API's record is still made.
    pub fn record(&self, entry: Entry<'_>, message_id: i32) {
        self.write(entry, &message_id.to_string());
    }

    /// What the journal holds for `entry`.
    pub fn state(&self, entry: Entry<'_>) -> State {
        match std::fs::read_to_string(self.dir.join(entry.file_name())) {
            Err(_) => State::Absent,
            Ok(text) if text.trim() == INTENDED => State::Intended,
            Ok(text) => text.trim().parse().map_or(State::Absent, State::Sent),
        }
    }

    /// The message recorded for `entry`, if any.
    pub fn lookup(&self, entry: Entry<'_>) -> Option<i32> {
        match self.state(entry) {
            State::Sent(message_id) => Some(message_id),
            State::Absent | State::Intended => None,
        }
    }

    /// Forgets `entry`: the API has its record now.
    pub fn forget(&self, entry: Entry<'_>) {
        match std::fs::remove_file(self.dir.join(entry.file_name())) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(%error, "a journal entry could not be removed"),
        }
    }

    /// Removes entries (and half-written files) older than `older_than`; how many.
    pub fn prune(&self, older_than: Duration) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let now = SystemTime::now();
        entries
            .flatten()
            .filter(|entry| {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| now.duration_since(at).unwrap_or_default() >= older_than)
            })
            .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
            .count()
    }
}

/// The bot's numeric id: the part of its token before the colon (0 if the token has none).
pub fn bot_id(token: &str) -> u64 {
    token
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path(), 42).expect("open");
        (dir, journal)
    }

    #[test]
    fn entries_are_found_until_forgotten_and_survive_reopening() {
        let (dir, journal) = journal();
        let reply = Entry::Reply {
            chat: 7,
            update_id: 9,
        };
        let sent = Entry::Notification("doc:0b6f3c1e-8a0e-4b33-9c55-0d1f2a3b4c5d");
        assert_eq!(journal.lookup(reply), None);
        journal.record(reply, 1234);
        journal.record(sent, 55);
        // Another process on the same host (a restart) reads what this one wrote.
        let again = Journal::open(dir.path(), 42).expect("reopen");
        assert_eq!(again.lookup(reply), Some(1234));
        assert_eq!(again.lookup(sent), Some(55));
        // Other chats, updates, notifications and bots are other entries.
        assert_eq!(
            again.lookup(Entry::Reply {
                chat: 8,
                update_id: 9
            }),
            None
        );
        assert_eq!(
            again.lookup(Entry::Reply {
                chat: 7,
                update_id: 10
            }),
            None
        );
        assert_eq!(again.lookup(Entry::Notification("doc:other")), None);
        let other_bot = Journal::open(dir.path(), 43).expect("open");
        assert_eq!(other_bot.lookup(reply), None);
        again.forget(reply);
        assert_eq!(journal.lookup(reply), None);
        assert_eq!(journal.lookup(sent), Some(55));
        // Forgetting what is not there is fine.
        again.forget(reply);
    }

    #[test]
    fn hostile_notification_ids_stay_inside_the_journal() {
        let (dir, journal) = journal();
        for id in [
            "../../etc/passwd",
            "a/b\\c",
            "\0",
            "\u{202e}x",
            &"x".repeat(1000),
        ] {
            journal.record(Entry::Notification(id), 1);
            assert_eq!(journal.lookup(Entry::Notification(id)), Some(1));
        }
        let files: Vec<_> = std::fs::read_dir(dir.path().join("bot-42"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 5);
        assert!(
            files
                .iter()
                .all(|f| f.starts_with("sent.") && f.len() == 37)
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "nothing outside the bot's folder"
        );
    }

    #[test]
    fn old_entries_are_pruned_and_fresh_ones_kept() {
        let (_dir, journal) = journal();
        let entry = Entry::Reply {
            chat: 1,
            update_id: 2,
        };
        journal.record(entry, 3);
        assert_eq!(journal.prune(Duration::from_secs(3600)), 0);
        assert_eq!(journal.lookup(entry), Some(3));
        assert_eq!(journal.prune(Duration::ZERO), 1);
        assert_eq!(journal.lookup(entry), None);
    }

    #[test]
    fn an_intent_is_known_until_the_message_id_replaces_it() {
        let (_dir, journal) = journal();
        let entry = Entry::Notification("doc:y");
        assert_eq!(journal.state(entry), State::Absent);
        journal.intend(entry);
        assert_eq!(journal.state(entry), State::Intended);
        assert_eq!(journal.lookup(entry), None);
        journal.record(entry, 9);
        assert_eq!(journal.state(entry), State::Sent(9));
        journal.forget(entry);
        assert_eq!(journal.state(entry), State::Absent);
    }

    #[test]
    fn a_corrupt_entry_reads_as_absent() {
        let (dir, journal) = journal();
        let entry = Entry::Notification("doc:x");
        journal.record(entry, 3);
        let path = dir.path().join("bot-42").join(entry.file_name());
        std::fs::write(&path, "not a number").expect("write");
        assert_eq!(journal.lookup(entry), None);
    }

    #[test]
    fn the_bot_id_is_the_token_prefix() {
        assert_eq!(bot_id("123456:ABC-def"), 123_456);
        assert_eq!(bot_id("nonsense"), 0);
        assert_eq!(bot_id(":x"), 0);
    }
}
