-- The language a person chose for Dossier (bot messages, Mini App); NULL follows the language
-- of their Telegram client.
ALTER TABLE users ALTER COLUMN language DROP NOT NULL, ALTER COLUMN language DROP DEFAULT;
UPDATE users SET language = NULL;
ALTER TABLE users ADD CONSTRAINT users_language_known CHECK (language IN ('en', 'ru'));

-- One-time links for something done outside the current session: a passkey set up in the
-- system browser for a Mini App user, a data export downloaded once. Only the SHA-256 of the
-- random token is stored.
CREATE TABLE one_time_links (
    id              uuid PRIMARY KEY,
    token_hash      bytea NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose         text NOT NULL CHECK (purpose IN ('passkey_setup', 'export')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    -- Set when the link was opened (it works once).
    used_at         timestamptz,
    -- A passkey setup: when it finished and the name of the passkey it added.
    completed_at    timestamptz,
    passkey_name    text,
    CONSTRAINT one_time_links_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX one_time_links_user_idx ON one_time_links (user_id);
CREATE INDEX one_time_links_expires_at_idx ON one_time_links (expires_at);
