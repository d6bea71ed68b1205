"""The console's tables beside accord's others: users and API tokens (hashed), the console's
own audit of what people did, and feedback on threads.

``accord_console_users`` keeps a name, a role and an scrypt hash of the password or token;
``accord_console_log`` records every console action (who, what, on which thread, why, whether it
was allowed); ``accord_console_feedback`` keeps good/bad labels with a note. The same SQL serves
SQLite and PostgreSQL (``?`` placeholders are rewritten for psycopg); ``memory://`` keeps the
rows in process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from accord.checkpoints.connections import connect_postgres, connect_sqlite
from accord.checkpoints.urls import Backend, parse_url, resolve_url
from accord.records import utcnow
from accord.server.auth import Role, UnknownRole, User

DDL = (
    """CREATE TABLE IF NOT EXISTS accord_console_users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, secret_hash TEXT NOT NULL,
        token_hash TEXT, created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS accord_console_log (
        id TEXT PRIMARY KEY, at TEXT NOT NULL, user_name TEXT, action TEXT NOT NULL,
        target TEXT, allowed INTEGER NOT NULL, note TEXT)""",
    """CREATE TABLE IF NOT EXISTS accord_console_feedback (
        id TEXT PRIMARY KEY, at TEXT NOT NULL, user_name TEXT NOT NULL, thread_id TEXT NOT NULL,
        step TEXT, label TEXT NOT NULL, note TEXT)""",
    "CREATE TABLE IF NOT EXISTS accord_console_secret (id INTEGER PRIMARY KEY, secret TEXT)",
)

_N, _R, _P = 2**14, 8, 1


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """``scrypt$salt$digest`` of a password or token."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str | None) -> bool:
    """Whether ``secret`` matches a ``hash_secret`` value (constant time)."""
    if not stored or stored.count("$") != 2:
        return False
    _, salt, digest = stored.split("$")
    return hmac.compare_digest(hash_secret(secret, bytes.fromhex(salt)).split("$")[2], digest)


def token_key(token: str) -> str:
    """A token's lookup key: its SHA-256 (tokens are long and random, no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleStore:
    """The console's tables in the database at ``url`` (one connection, used under a lock)."""

    def __init__(self, url: str | None = None) -> None:
        self.db = parse_url(resolve_url(url))
        self._lock = threading.Lock()
        self._conn: Any = None
        self._memory: dict[str, list[tuple]] = {"users": [], "log": [], "feedback": []}
        self._memory_secret: str | None = None

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            if self._conn is None:
                if self.db.backend is Backend.SQLITE:
                    self._conn = connect_sqlite(self.db, autocommit=True)
                else:
                    self._conn = connect_postgres(self.db)
                for ddl in DDL:
                    self._conn.execute(ddl)
            yield self._conn

    def _run(self, sql: str, *params: Any) -> list[tuple]:
        if self.db.backend is Backend.POSTGRES:
            sql = sql.replace("?", "%s")
        with self._cursor() as conn:
            cur = conn.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # users ---------------------------------------------------------------------------------

    def add_user(self, name: str, role: Role, password: str) -> str:
        """Create or replace a user; returns a new API token (shown once, stored hashed)."""
        token = "acc_" + secrets.token_urlsafe(24)
        row = (name, role.name.lower(), hash_secret(password), token_key(token), utcnow())
        if self.db.backend is Backend.MEMORY:
            self._memory["users"] = [u for u in self._memory["users"] if u[0] != name] + [row]
            return token
        self._run("DELETE FROM accord_console_users WHERE name = ?", name)
        self._run("INSERT INTO accord_console_users VALUES (?, ?, ?, ?, ?)", *row)
        return token

    def _users(self, where: str, value: str) -> list[tuple]:
        if self.db.backend is Backend.MEMORY:
            col = 0 if where == "name" else 3
            return [u for u in self._memory["users"] if u[col] == value]
        return self._run(f"SELECT name, role, secret_hash, token_hash, created_at "
                         f"FROM accord_console_users WHERE {where} = ?", value)

    def has_users(self) -> bool:
        """Whether any user exists (with none, accord's HTTP app stays open)."""
        if self.db.backend is Backend.MEMORY:
            return bool(self._memory["users"])
        return bool(self._run("SELECT 1 FROM accord_console_users LIMIT 1"))

    def user(self, name: str) -> User | None:
        found = self._users("name", name)
        return User(found[0][0], Role.named(found[0][1])) if found else None

    def authenticate(self, name: str, password: str) -> User | None:
        found = self._users("name", name)
        if not found or not check_secret(password, found[0][2]):
            return None
        return User(found[0][0], Role.named(found[0][1]))

    def by_token(self, token: str) -> User | None:
        found = self._users("token_hash", token_key(token))
        return User(found[0][0], Role.named(found[0][1])) if found else None

    # the signing secret --------------------------------------------------------------------

    def signing_secret(self) -> str:
        """The stored session-signing secret, made on first use."""
        if self.db.backend is Backend.MEMORY:
            self._memory_secret = self._memory_secret or secrets.token_hex(32)
            return self._memory_secret
        found = self._run("SELECT secret FROM accord_console_secret WHERE id = 1")
        if found:
            return found[0][0]
        fresh = secrets.token_hex(32)
        conflict = " ON CONFLICT (id) DO NOTHING"
        self._run("INSERT INTO accord_console_secret (id, secret) VALUES (1, ?)" + conflict, fresh)
        return self._run("SELECT secret FROM accord_console_secret WHERE id = 1")[0][0]

    # the console's audit and feedback ------------------------------------------------------

    def log(self, user: str | None, action: str, target: str | None, allowed: bool,
            note: str | None = None) -> None:
        row = (secrets.token_hex(8), utcnow(), user, action, target, int(allowed), note)
        if self.db.backend is Backend.MEMORY:
            self._memory["log"].append(row)
        else:
            self._run("INSERT INTO accord_console_log VALUES (?, ?, ?, ?, ?, ?, ?)", *row)

    def entries(self, target: str | None = None) -> list[dict[str, Any]]:
        keys = ("id", "at", "user", "action", "target", "allowed", "note")
        if self.db.backend is Backend.MEMORY:
            rows = list(self._memory["log"])
        else:
            rows = self._run("SELECT id, at, user_name, action, target, allowed, note "
                             "FROM accord_console_log ORDER BY at")
        found = [dict(zip(keys, r, strict=True)) for r in rows]
        return [e for e in found if target is None or e["target"] == target]

    def add_feedback(self, user: str, thread_id: str, step: str | None, label: str,
                     note: str | None) -> None:
        row = (secrets.token_hex(8), utcnow(), user, thread_id, step, label, note)
        if self.db.backend is Backend.MEMORY:
            self._memory["feedback"].append(row)
        else:
            self._run("INSERT INTO accord_console_feedback VALUES (?, ?, ?, ?, ?, ?, ?)", *row)

    def feedback(self) -> list[dict[str, Any]]:
        keys = ("id", "at", "user", "thread_id", "step", "label", "note")
        if self.db.backend is Backend.MEMORY:
            rows = list(self._memory["feedback"])
        else:
            rows = self._run("SELECT id, at, user_name, thread_id, step, label, note "
                             "FROM accord_console_feedback ORDER BY at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def feedback_jsonl(self) -> str:
        return "".join(json.dumps(row) + "\n" for row in self.feedback())


__all__ = ["ConsoleStore", "Role", "UnknownRole", "User", "check_secret", "hash_secret"]
