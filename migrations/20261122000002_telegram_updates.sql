-- Update ids the bot has taken on (one row per update, kept for two days: Telegram keeps
-- unconfirmed updates for 24 hours). A restarted bot never handles an update twice.
CREATE TABLE telegram_updates (
    update_id       bigint PRIMARY KEY,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telegram_updates_claimed_at_idx ON telegram_updates (claimed_at);
