-- chat-server schema, applied at start-up inside one transaction.
-- Every statement is idempotent; `PRAGMA user_version` (set by the server
-- after this file) records which version of the schema the file holds, so a
-- later version can migrate from it.

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
    created_at INTEGER NOT NULL  -- Unix milliseconds, UTC
);

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
    created_at   INTEGER NOT NULL  -- Unix milliseconds, UTC
);

-- Server settings that must survive a restart (the generated JWT secret).
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
