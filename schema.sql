-- chat-server schema (version 2), applied at start-up inside one transaction.
-- Every statement is idempotent. A database of an older version is first
-- brought to this layout by the migration steps in `src/db/schema.rs` (in the
-- same transaction), then this file is applied; `PRAGMA user_version`, set
-- by the server after it, records the version the database now holds.

-- Accounts. Names are unique without regard to case ("Test" and "test" are
-- one account) but keep the spelling they were registered with.
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL  -- Unix milliseconds, UTC
);
CREATE UNIQUE INDEX IF NOT EXISTS users_username_nocase ON users (username COLLATE NOCASE);

-- The global room. `id` is the rowid: history pages by id walk the table's
-- own b-tree, and since messages are never deleted ids only grow. The name is
-- stored with the message (names never change) so history needs no join.
CREATE TABLE IF NOT EXISTS messages (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    username   TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at INTEGER NOT NULL, -- Unix milliseconds, UTC
    -- The file a file message carries (v2), NULL for a plain message.
    file_id    TEXT
);
CREATE INDEX IF NOT EXISTS messages_file ON messages (file_id) WHERE file_id IS NOT NULL;

-- Uploaded files. `id` is the random public id and the file's name under the
-- uploads directory; `seq` orders the listing newest first.
CREATE TABLE IF NOT EXISTS files (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    filename     TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    uploaded_by  INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL, -- Unix milliseconds, UTC
    -- 1 once the file has been shared in the room (v2): every member may
    -- see it. Private to its uploader until then.
    shared       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_uploader ON files (uploaded_by, seq);
CREATE INDEX IF NOT EXISTS files_shared ON files (seq) WHERE shared = 1;

-- Login sessions (v2): one per successful `POST /token`, refreshed in place.
-- A token is valid only while its session is neither revoked nor past
-- `expires_at`, the absolute limit (created_at + --session-max-age).
-- `last_used_at` is written in batches, so it may lag by up to a minute.
CREATE TABLE IF NOT EXISTS sessions (
    id           TEXT    PRIMARY KEY, -- random, 128 bits, URL-safe
    user_id      INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,    -- Unix milliseconds, UTC
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    -- When the session's newest token expires: it ends then unless a
    -- refresh issues a newer one, so only recently used sessions stay live.
    token_expires_at INTEGER NOT NULL,
    revoked_at   INTEGER,             -- NULL while live
    ip           TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id, created_at);

-- Expiring download links of a file (v2). Only the SHA-256 of the link's
-- token is kept, so a copy of the database cannot be turned into links.
CREATE TABLE IF NOT EXISTS share_links (
    id         TEXT    PRIMARY KEY,  -- public id, for listing and revoking
    file_id    TEXT    NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    token_hash BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER               -- NULL while live
);
CREATE INDEX IF NOT EXISTS share_links_file ON share_links (file_id);

-- Server settings that must survive a restart (the generated JWT secret,
-- the database's epoch).
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
