#!/usr/bin/env python3
"""Builds a chat database with N messages by inserting rows directly with
SQLite (seeding through the WebSocket would take far longer). The server
applies its schema to the file at start-up; the tables here match schema.sql.

Usage: seed_db.py DB_PATH [N]   (default N = 1000000)
"""
import sqlite3
import sys
import time

SCHEMA = open(__file__.rsplit("/", 3)[0] + "/schema.sql").read()


def main():
    path = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    now = int(time.time() * 1000)
    # A bcrypt hash of no known password: the seed user never logs in.
    db.execute(
        "INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'seed', ?, ?)",
        ("$2b$04$" + "x" * 53, now),
    )
    rows = ((i, 1, "seed", f"seed message {i} " + "lorem ipsum " * 4, now - count + i) for i in range(1, count + 1))
    db.executemany("INSERT INTO messages (id, user_id, username, content, created_at) VALUES (?, ?, ?, ?, ?)", rows)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


if __name__ == "__main__":
    main()
