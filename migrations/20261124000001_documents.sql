-- Documents, their pages and chunks, and what the pipeline learned about them.

CREATE TABLE documents (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- What the person called it (shown back to them, never used as a path).
    file_name       text NOT NULL,
    -- Detected from the bytes, not taken from the client.
    content_type    text NOT NULL,
    size_bytes      bigint NOT NULL,
    -- SHA-256 of the file (of a single file; albums have none): the same file twice is
    -- recognised per user.
    sha256          bytea,
    source          text NOT NULL CHECK (source IN ('web', 'telegram')),
    -- A Telegram album (media group) collects its photos here while `status = 'queued'`.
    media_group_id  text,
    last_part_at    timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'processing', 'processed', 'failed', 'unsupported')),
    -- The next stage to run; `done` once the pipeline finished (either way).
    stage           text NOT NULL DEFAULT 'text'
                    CHECK (stage IN ('text', 'classify', 'extract', 'embed', 'done')),
    -- Shown to the person when the document failed or is unsupported.
    failure_reason  text,
    page_count      integer,
    doc_type        text,
    type_confidence real,
    fields          jsonb,
    -- Set once the completion was handed to notifications (exactly once per document).
    notified_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT documents_file_name_length CHECK (char_length(file_name) <= 255)
);
CREATE UNIQUE INDEX documents_user_sha256_key ON documents (user_id, sha256) WHERE sha256 IS NOT NULL;
CREATE UNIQUE INDEX documents_open_album_key ON documents (user_id, media_group_id)
    WHERE media_group_id IS NOT NULL AND status = 'queued';
CREATE INDEX documents_user_created_idx ON documents (user_id, created_at DESC);
CREATE INDEX documents_unfinished_idx ON documents (updated_at) WHERE stage <> 'done';

-- The stored files of a document: one, or one per photo of an album (in order).
CREATE TABLE document_files (
    document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    part            integer NOT NULL,
    object_key      text NOT NULL,
    content_type    text NOT NULL,
    size_bytes      bigint NOT NULL,
    sha256          bytea NOT NULL,
    -- Telegram's file_id once the bot sent this file, so it is never uploaded twice.
    telegram_file_id text,
    PRIMARY KEY (document_id, part)
);

-- Text per page, as the text stage found it.
CREATE TABLE document_pages (
    document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    page            integer NOT NULL,
    text            text NOT NULL,
    ocr             boolean NOT NULL,
    PRIMARY KEY (document_id, page)
);

-- Page-aware chunks with their embeddings (little-endian f32), written in one transaction per
-- document. `user_id` is repeated so that every search filters by it without a join.
CREATE TABLE chunks (
    document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal         integer NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    page            integer NOT NULL,
    text            text NOT NULL,
    model           text NOT NULL,
    embedding       bytea NOT NULL,
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    PRIMARY KEY (document_id, ordinal)
);
CREATE INDEX chunks_user_idx ON chunks (user_id);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);

-- What a person wants to be told in Telegram (a row appears when they change a default).
CREATE TABLE notification_preferences (
    user_id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    processed       boolean NOT NULL DEFAULT true,
    failed          boolean NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Notifications the bot has taken on: a redelivered one is never sent twice.
CREATE TABLE notification_claims (
    id              text PRIMARY KEY,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_claims_claimed_at_idx ON notification_claims (claimed_at);
