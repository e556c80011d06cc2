-- Claims become two-phase: taken (by a holder, one bot process) and done. A bot killed while
-- handling an update or sending a notification leaves a claim that is not done; the next
-- process takes it over and finishes the work instead of skipping it.
ALTER TABLE telegram_updates
    ADD COLUMN holder           text NOT NULL DEFAULT '',
    ADD COLUMN attempts         integer NOT NULL DEFAULT 1,
    ADD COLUMN done_at          timestamptz,
    -- The message the first attempt already sent about this update (a status message the
    -- next attempt edits instead of sending another).
    ADD COLUMN reply_message_id integer;
-- Claims made before this migration were handled.
UPDATE telegram_updates SET done_at = claimed_at;

ALTER TABLE notification_claims
    ADD COLUMN holder           text NOT NULL DEFAULT '',
    ADD COLUMN attempts         integer NOT NULL DEFAULT 1,
    ADD COLUMN done_at          timestamptz;
UPDATE notification_claims SET done_at = claimed_at;

-- An upload's idempotency key (the bot sends `tg:<update id>`): the same upload retried after
-- a lost answer gets its original receipt, not "already in your archive".
ALTER TABLE documents ADD COLUMN source_key text;
