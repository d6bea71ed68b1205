"""The publishing desk's newsroom: an embedded SQLite database of sourced facts, drafts, fact
checks and published articles, the tools that act on it, and the drafting rules.

This is the desk's domain, shared by the accord workflow (``workflow.py``) and the same workflow
hand-written in plain LangGraph (``benchmarks/desk_langgraph.py``). Side-effecting tools take an
``idempotency_key`` (hidden from the model): a repeated call with the same key returns the
recorded row instead of acting twice, which is what makes a publish happen once although
LangGraph re-runs a node after a resume or a crash.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from langchain_core.tools import BaseTool, InjectedToolArg, tool

from accord.agents import read_only

DEFAULT_DESK_DB = ".accord/desk.db"
DEFAULT_AUDIENCE = 1_000
AUDIENCE = re.compile(r"(\d[\d,]*)\s*(?:readers|subscribers|people|audience)", re.IGNORECASE)
CLAIM = re.compile(r"\b(?:mention|say|add) that ([^.]+)\.?", re.IGNORECASE)


def desk_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Explicit path, else ``ACCORD_DESK_DB``, else ``.accord/desk.db``."""
    return Path(path or os.environ.get("ACCORD_DESK_DB") or DEFAULT_DESK_DB)


def normal(sentence: str) -> str:
    return " ".join(sentence.lower().strip(" .").split())


def sentences(body: str) -> list[str]:
    return [s.strip().rstrip(".") + "." for s in re.split(r"(?<=\.)\s+", body.strip()) if s.strip(" .")]


def audience_of(request: str) -> int:
    """The audience a request names ("for 25,000 readers"), else the default."""
    found = AUDIENCE.search(request)
    return int(found.group(1).replace(",", "")) if found else DEFAULT_AUDIENCE


def compose(request: str, facts: list[str], unsupported: list[str] = ()) -> dict[str, Any]:
    """A draft from the sourced facts and the claims the request asks for ("mention that …"),
    without the sentences a fact check found unsupported."""
    claims = [c.strip()[0].upper() + c.strip()[1:] + "." for c in CLAIM.findall(request)]
    dropped = {normal(s) for s in unsupported}
    body = " ".join(s for s in [*facts, *claims] if normal(s) not in dropped)
    topic = re.sub(r"^(?:please\s+)?(?:write|draft)\s+(?:a\s+)?(?:piece|story|article)?\s*"
                   r"(?:about|on)\s+(?:the\s+)?", "", request.split(".")[0], flags=re.IGNORECASE)
    title = re.sub(r"\s+for\s+[\d,]+\s+\w+$", "", topic).strip().capitalize() or "Untitled"
    return {"title": title, "body": body, "audience": audience_of(request)}


class DeskDB:
    """The newsroom's data; each call opens its own connection (safe across processes)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = desk_db_path(path)
        self._ready = False

    def connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            seed = resources.files("accord.graphs.desk").joinpath("data/desk.sql").read_text()
            with closing(sqlite3.connect(self.path, timeout=30)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(seed)
                conn.commit()
            self._ready = True
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with closing(self.connect()) as conn:
            return [dict(row) for row in conn.execute(sql, params)]

    def _insert_once(self, table: str, key: str, sql: str, *params: Any) -> dict[str, Any]:
        with closing(self.connect()) as conn, conn:
            conn.execute(sql, params)
            row = conn.execute(f"SELECT * FROM {table} WHERE idempotency_key = ?", (key,)).fetchone()
            return dict(row)

    # reads ---------------------------------------------------------------------------------
    def facts(self, text: str) -> list[str]:
        rows = self.query("SELECT topic, fact FROM sources ORDER BY id")
        return [r["fact"] for r in rows if r["topic"] in text.lower()]

    def draft(self, story: str) -> dict[str, Any] | None:
        """The story's latest draft, its revision, and its latest fact check (if any)."""
        rows = self.query("SELECT d.*, (SELECT COUNT(*) FROM drafts e WHERE e.story = d.story "
                          "AND e.id <= d.id) AS revision, (SELECT unsupported FROM checks c "
                          "WHERE c.draft_id = d.id ORDER BY c.id DESC LIMIT 1) AS unsupported "
                          "FROM drafts d WHERE d.story = ? ORDER BY d.id DESC LIMIT 1", story)
        if not rows:
            return None
        draft = rows[0]
        draft["checked"] = draft["unsupported"] is not None
        draft["unsupported"] = json.loads(draft["unsupported"] or "[]")
        return draft

    def articles(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM articles ORDER BY id")

    # writes (idempotent) -----------------------------------------------------------------------
    def save_draft(self, story: str, title: str, body: str, audience: int, key: str) -> dict[str, Any]:
        self._insert_once("drafts", key, "INSERT OR IGNORE INTO drafts (story, title, body, audience, "
                          "idempotency_key) VALUES (?, ?, ?, ?, ?)", story, title, body, audience, key)
        return self.draft(story) or {}

    def check(self, draft_id: int, key: str) -> dict[str, Any]:
        found = self.query("SELECT * FROM drafts WHERE id = ?", draft_id)
        if not found:
            raise ValueError(f"no draft {draft_id}")
        draft = found[0]
        known = {normal(row["fact"]) for row in self.query("SELECT fact FROM sources")}
        unsupported = [s for s in sentences(draft["body"]) if normal(s) not in known]
        row = self._insert_once("checks", key, "INSERT OR IGNORE INTO checks (draft_id, unsupported, "
                                "idempotency_key) VALUES (?, ?, ?)", draft["id"],
                                json.dumps(unsupported), key)
        return {"draft_id": row["draft_id"], "unsupported": json.loads(row["unsupported"])}

    def publish(self, story: str, audience: int, key: str) -> dict[str, Any]:
        done = self.query("SELECT * FROM articles WHERE idempotency_key = ?", key)
        if done:
            return done[0]
        draft = self.draft(story)
        if draft is None or not draft["checked"] or draft["unsupported"]:
            raise ValueError(f"story {story} has no fact-checked draft without unsupported claims")
        return self._insert_once("articles", key, "INSERT OR IGNORE INTO articles (story, draft_id, "
                                 "title, body, audience, idempotency_key) VALUES (?, ?, ?, ?, ?, ?)",
                                 story, draft["id"], draft["title"], draft["body"], audience, key)


Key = Annotated[str, InjectedToolArg]


def desk_tools(db: DeskDB) -> list[BaseTool]:
    """The desk's tools, bound to one database."""

    @read_only
    @tool
    def find_sources(topic: str) -> list[str]:
        """Sourced facts about a topic (every sentence of a draft must be one of them)."""
        return db.facts(topic)

    @read_only
    @tool
    def read_draft(story: str) -> dict[str, Any]:
        """The latest draft of a story, with the claims its last fact check found unsupported."""
        return db.draft(story) or {"error": f"no draft of story {story} yet"}

    @tool
    def save_draft(story: str, title: str, body: str, audience: int, idempotency_key: Key = "") -> dict[str, Any]:
        """Save a new revision of a story's draft (audience: how many readers it goes to)."""
        return db.save_draft(story, title, body, audience, idempotency_key or f"direct:{story}:{body}")

    @tool
    def check_facts(draft_id: int, idempotency_key: Key = "") -> dict[str, Any]:
        """Check every sentence of a draft (by its id) against the sources; record the result."""
        return db.check(draft_id, idempotency_key or f"direct:{draft_id}")

    @tool
    def publish_article(story: str, audience: int, idempotency_key: Key = "") -> dict[str, Any]:
        """Publish a story's fact-checked draft to an audience. Large audiences need an editor."""
        article = db.publish(story, audience, idempotency_key or f"direct:{story}:{audience}")
        return {"article_id": article["id"], "story": story, "title": article["title"],
                "audience": article["audience"]}

    return [find_sources, read_draft, save_draft, check_facts, publish_article]
