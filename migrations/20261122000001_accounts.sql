-- Accounts, sessions and everything a caller proves itself with.

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    email           text NOT NULL,
    -- Lower-cased, trimmed: what uniqueness and sign-in compare.
    email_normalized text NOT NULL,
    -- argon2id PHC string; NULL for an account created with a passkey only.
    password_hash   text,
    is_admin        boolean NOT NULL DEFAULT false,
    language        text NOT NULL DEFAULT 'en',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email_normalized),
    CONSTRAINT users_email_length CHECK (char_length(email) <= 254)
);

-- A session is found by the SHA-256 of its random token; the token itself is never stored.
CREATE TABLE sessions (
    token_hash      bytea PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('web', 'miniapp')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    -- Web sessions slide (idle timeout); Mini App sessions end at a fixed time.
    sliding         boolean NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Fixed-window counters for rate limits, shared by every server replica.
CREATE TABLE rate_limits (
    key             text PRIMARY KEY,
    window_start    timestamptz NOT NULL,
    hits            integer NOT NULL
);

-- Nonces of signed service calls, kept for longer than the accepted clock skew.
CREATE TABLE service_nonces (
    service         text NOT NULL,
    nonce           text NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (service, nonce)
);
CREATE INDEX service_nonces_expires_at_idx ON service_nonces (expires_at);

-- Telegram users the bot has met. `user_id` is set once linked: one Telegram user ↔ one account.
CREATE TABLE telegram_accounts (
    telegram_user_id bigint PRIMARY KEY,
    user_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    chat_id         bigint,
    username        text,
    first_name      text NOT NULL DEFAULT '',
    last_name       text,
    language_code   text,
    linked_at       timestamptz,
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT telegram_accounts_user_id_key UNIQUE (user_id)
);
CREATE INDEX telegram_accounts_username_idx ON telegram_accounts (lower(username));

CREATE TABLE passkeys (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   bytea NOT NULL,
    -- webauthn-rs' Passkey (public key, counter, backup state), serialised.
    passkey         jsonb NOT NULL,
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    CONSTRAINT passkeys_credential_id_key UNIQUE (credential_id),
    CONSTRAINT passkeys_name_length CHECK (char_length(name) BETWEEN 1 AND 64)
);
CREATE INDEX passkeys_user_id_idx ON passkeys (user_id);

-- WebAuthn ceremony state lives on the server and is consumed once (DELETE … RETURNING).
CREATE TABLE webauthn_ceremonies (
    id              uuid PRIMARY KEY,
    user_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('register', 'authenticate')),
    state           jsonb NOT NULL,
    expires_at      timestamptz NOT NULL
);
