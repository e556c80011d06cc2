-- Update claims are per bot: two bots (or a bot whose token changed) number their updates
-- independently, so one bot's update 17 must never read as another's. Rows from before this
-- migration were the one bot's; they age out within two days like every claim.
ALTER TABLE telegram_updates ADD COLUMN bot_id bigint NOT NULL DEFAULT 0;
ALTER TABLE telegram_updates DROP CONSTRAINT telegram_updates_pkey;
ALTER TABLE telegram_updates ADD PRIMARY KEY (bot_id, update_id);
ALTER TABLE telegram_updates ALTER COLUMN bot_id DROP DEFAULT;

-- A Telegram user who pressed Block under a push-link request gets no more of them (deep
-- links, which they open themselves, still work).
ALTER TABLE telegram_accounts ADD COLUMN push_blocked_at timestamptz;
