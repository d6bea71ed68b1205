"""The runs API: start, watch, answer and cancel runs over HTTP (JSON).

Routes live under ``/api`` (``langgraph dev`` and the Agent Server, which mount accord's app,
own ``/runs`` and ``/threads``):

- ``POST /api/runs`` ``{graph, input, thread_id?, user?}``: ``input`` is the message text or
  the graph's input object ``{"messages": [...]}``; checked (input schema, input guardrails,
  the thread's state), queued, answered ``202`` with the thread id at once;
- ``GET /api/threads/{id}``: the thread index record, the pending approval (LangChain's HITL
  request), a summary of the latest values, ``queued``;
- ``GET /api/threads/{id}/state``: the latest state values as JSON;
- ``POST /api/threads/{id}/resume`` ``{"decisions": [...]}`` or ``{"decision": ...}``:
  queued, ``202``; ``409`` unless the thread waits for a decision;
- ``POST /api/threads/{id}/cancel`` ``{by?, reason?}``: see :meth:`RunsAPI.cancel`;
- ``GET /api/threads/{id}/events``: Server-Sent Events (``accord.server.events``).

Errors are ``{"error": "..."}`` (``accord.server.errors``). Every route first awaits the
app's ``authorize(request, role)`` hook (``accord.server.access``): by default the console's
users and tokens once any exists (a viewer's token reads, an approver's changes threads), the
caller named by it being the ``by`` of a decision or a cancel.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.checkpoints import ThreadNotFound, ThreadRecord
from accord.engine.errors import InvalidInput, ThreadUnfinished, ThreadWaiting
from accord.engine.inputs import request_texts, validate_request
from accord.engine.session import Session, config_for
from accord.graphs.catalog import loadable
from accord.graphs.errors import InvalidResume, UnknownGraph
from accord.graphs.hitl import ALL_DECISIONS, parse_decision
from accord.guardrails.base import GuardrailTripwireTriggered, run_input_guardrails
from accord.records import AuditKind, ThreadStatus, audit_event
from accord.server.access import Authorize, Role, allow_all
from accord.server.bodies import BadRequest, max_body, optional_text, read_json
from accord.server.errors import Conflict, json_errors
from accord.server.executors import Executor, RunJob, live_status
from accord.server.shapes import jsonable, thread_view

PREFIX = "/api"
"""Where the runs API lives."""

THREAD_ID = re.compile(r"[\w.:@-]{1,200}")
"""What a thread id given to ``POST /api/runs`` may hold (it becomes a URL path segment)."""
RUN_KEYS = frozenset({"graph", "input", "thread_id", "user"})
RESUME_KEYS = frozenset({"decisions", "decision", "by", "user", "reason", "args", "message"})


@dataclass
class RunsAPI:
    """The runs API's routes; the app's lifespan binds the session and executor."""

    authorize: Authorize = allow_all
    """The authentication hook (``accord.server.access``)."""
    limit: int = field(default_factory=max_body)
    """Largest request body, in bytes."""
    poll: float = 0.25
    """Seconds between two reads of the database by an event stream."""
    graphs: dict[str, str] = field(default_factory=dict)
    """Graphs the API runs beyond the catalog and ``./langgraph.json``: name -> reference."""
    session: Session | None = None
    """The engine's session (bound at start-up)."""
    executor: Executor | None = None
    """Where queued work runs (bound at start-up)."""

    def bind(self, session: Session, executor: Executor) -> None:
        self.session, self.executor = session, executor

    def routes(self) -> list[Route]:
        from accord.server.events import events_endpoint

        return [
            Route(f"{PREFIX}/runs", json_errors(self.submit), methods=["POST"]),
            Route(f"{PREFIX}/threads/{{thread_id}}", json_errors(self.thread), methods=["GET"]),
            Route(f"{PREFIX}/threads/{{thread_id}}/state", json_errors(self.state),
                  methods=["GET"]),
            Route(f"{PREFIX}/threads/{{thread_id}}/resume", json_errors(self.resume),
                  methods=["POST"]),
            Route(f"{PREFIX}/threads/{{thread_id}}/cancel", json_errors(self.cancel),
                  methods=["POST"]),
            Route(f"{PREFIX}/threads/{{thread_id}}/events", json_errors(events_endpoint(self)),
                  methods=["GET"]),
        ]

    # helpers ---------------------------------------------------------------------------------
    def _bound(self) -> tuple[Session, Executor]:
        if self.session is None or self.executor is None:
            raise Conflict("the runs API is starting; try again")
        return self.session, self.executor

    async def _body(self, request: Request, keys: frozenset[str]) -> dict[str, Any]:
        body = await read_json(request, self.limit)
        unknown = sorted(set(body) - keys)
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; "
                             f"expected {', '.join(sorted(keys))}")
        return body

    async def _record(self, thread_id: str) -> ThreadRecord | None:
        session, _ = self._bound()
        return await session.record(thread_id)

    # routes ----------------------------------------------------------------------------------
    async def submit(self, request: Request) -> Response:
        await self.authorize(request, Role.OPERATOR)
        session, executor = self._bound()
        body = await self._body(request, RUN_KEYS)
        name = body.get("graph")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("'graph' must name a graph (for example 'support')")
        if name not in self.graphs and (":" in name or not loadable(name)):
            raise UnknownGraph(f"unknown graph {name!r}: the API runs graphs of accord's "
                               "catalog and of ./langgraph.json")
        name = self.graphs.get(name, name)
        payload = _input(body.get("input"))
        thread_id = optional_text(body, "thread_id") or uuid.uuid4().hex
        if not THREAD_ID.fullmatch(thread_id):
            raise BadRequest("'thread_id' may hold letters, digits and . _ : @ - only")
        user = optional_text(body, "user")
        graph = session.graph(name)
        checked = validate_request(payload)
        tripped = next((found for text in request_texts(checked) if (
            found := run_input_guardrails(graph.engine.input_guardrails, text))), None)
        if tripped is not None:
            event = audit_event(AuditKind.INPUT_REFUSED, **tripped.as_dict())
            await session.saver._offload(session.saver.record_refusal, thread_id, event)
            raise GuardrailTripwireTriggered(tripped)
        record = await session.record(thread_id)
        if executor.pending(thread_id, record) or executor.running(thread_id):
            raise Conflict(f"thread {thread_id!r} already has queued work")
        if record is not None and record.status is ThreadStatus.INTERRUPTED:
            raise ThreadWaiting(thread_id, record.pending)
        if record is not None and record.status is ThreadStatus.RUNNING:
            raise Conflict(f"thread {thread_id!r} is running; wait for it to stop")
        if record is not None and record.status is ThreadStatus.FAILED:
            raise ThreadUnfinished(thread_id, record.error)
        await executor.submit(RunJob(graph=name, thread_id=thread_id, payload=payload, user=user,
                                     epoch=record.epoch if record else 0))
        return _accepted(thread_id, name)

    async def thread(self, request: Request) -> Response:
        await self.authorize(request, Role.VIEWER)
        session, executor = self._bound()
        thread_id = request.path_params["thread_id"]
        record = await session.record(thread_id)
        queued = executor.pending(thread_id, record)
        error = executor.last_error(thread_id)
        started = executor.running(thread_id)  # its run started, the claim not yet written
        if record is None and not queued and not started and error is None:
            raise ThreadNotFound(f"unknown thread {thread_id!r}")
        values, next_nodes = None, []
        if record is not None:
            snapshot = await self._snapshot(thread_id, record)
            if snapshot is not None:
                values, next_nodes = snapshot.values, list(snapshot.next or ())
        status = live_status(executor, thread_id, record)
        return JSONResponse(thread_view(thread_id, record, status=status, values=values,
                                        next_nodes=next_nodes, submit_error=error))

    async def _snapshot(self, thread_id: str, record: ThreadRecord | None) -> Any:
        session, _ = self._bound()
        try:
            name = await session.graph_of(thread_id, record)
        except ThreadNotFound:
            return None
        return await session.graph(name).aget_state(config_for(thread_id))

    async def state(self, request: Request) -> Response:
        await self.authorize(request, Role.VIEWER)
        thread_id = request.path_params["thread_id"]
        snapshot = await self._snapshot(thread_id, await self._record(thread_id))
        if snapshot is None or not snapshot.values:
            raise ThreadNotFound(f"thread {thread_id!r} has no saved state")
        checkpoint = (snapshot.config or {}).get("configurable", {}).get("checkpoint_id")
        return JSONResponse({"thread_id": thread_id, "checkpoint_id": checkpoint,
                             "next": list(snapshot.next or ()),
                             "values": jsonable(snapshot.values)})

    async def resume(self, request: Request) -> Response:
        caller = await self.authorize(request, Role.OPERATOR)
        session, executor = self._bound()
        thread_id = request.path_params["thread_id"]
        body = await self._body(request, RESUME_KEYS)
        user = optional_text(body, "user")
        body.pop("user", None)
        value = _decision(body, caller)
        record = await session.record(thread_id)
        queued = executor.pending(thread_id, record)
        if queued or executor.running(thread_id):
            raise Conflict(f"thread {thread_id!r} already has queued work; wait for it")
        if record is None:
            raise ThreadNotFound(f"unknown thread {thread_id!r}")
        if record.status is not ThreadStatus.INTERRUPTED:
            raise Conflict(f"thread {thread_id!r} is not waiting for a decision "
                           f"(it is {record.status.value})")
        _check_decision(value, record.pending)
        await executor.submit(RunJob(graph=record.graph or "", thread_id=thread_id, resume=value,
                                     user=user, epoch=record.epoch))
        return _accepted(thread_id, record.graph)

    async def cancel(self, request: Request) -> Response:
        """Cancel the thread's work and record it ``failed``, with who and why, in the audit.

        Queued work is dropped (in this process, or a queued job no worker has taken). A run
        in flight in this process is cancelled (its task; saved steps are kept). A run on a
        worker, or in another process, is not stopped mid-step: ``409`` says so (cancel it
        once it stops, at an approval or a failure). A waiting thread (an approval) is
        cancelled at once; a finished one answers ``409``.
        """
        caller = await self.authorize(request, Role.OPERATOR)
        session, executor = self._bound()
        thread_id = request.path_params["thread_id"]
        body = await self._body(request, frozenset({"by", "reason"}))
        by = caller or optional_text(body, "by")
        reason = optional_text(body, "reason", limit=1000) or "cancelled through the runs API"
        record = await session.record(thread_id)
        queued = executor.pending(thread_id, record)
        if record is None and not queued:
            raise ThreadNotFound(f"unknown thread {thread_id!r}")
        stopped = False
        if queued or executor.running(thread_id):
            stopped = await executor.cancel(thread_id)
        elif record is not None and record.status is ThreadStatus.RUNNING:
            if not await executor.cancel(thread_id):
                raise Conflict(f"thread {thread_id!r} is running in another process (a worker)"
                               "; a run is not stopped mid-step: cancel it once it stops")
            stopped = True
        done = await session.cancel(thread_id, by=by, reason=reason)
        return JSONResponse({"thread_id": thread_id, "status": done.status.value,
                             "error": done.error, "stopped": stopped})


def _accepted(thread_id: str, graph: str | None) -> JSONResponse:
    base = f"{PREFIX}/threads/{thread_id}"
    return JSONResponse({"thread_id": thread_id, "graph": graph, "status": "queued",
                         "links": {"thread": base, "events": f"{base}/events",
                                   "state": f"{base}/state"}}, status_code=202)


def _input(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        if not value.strip():
            raise InvalidInput("input is empty")
        return {"messages": [{"role": "user", "content": value}]}
    if isinstance(value, dict):
        return value
    raise InvalidInput("'input' must be the message text or an object {'messages': [...]}, "
                       f"got {type(value).__name__}")


def _decision(body: dict[str, Any], caller: str | None) -> dict[str, Any]:
    """The resume value: LangChain's ``{"decisions": [...]}`` or accord's ``{"decision"}``."""
    if "decisions" in body:
        if "decision" in body:
            raise BadRequest("send either 'decisions' or 'decision', not both")
        value = {"decisions": body["decisions"]}
        if caller or body.get("by"):
            value["by"] = caller or body.get("by")
        return value
    decision = body.get("decision")
    if isinstance(decision, dict):
        value = dict(decision)
    elif isinstance(decision, str):
        value = dict(body)
    else:
        raise BadRequest("the body needs 'decisions' (a list) or 'decision'")
    if caller:
        value["by"] = caller  # an authenticated caller is the decider, whatever the body says
    return value


def _check_decision(value: dict[str, Any], pending: Any) -> None:
    """Refuse (400) a decision that cannot answer the pending approval; the approval node
    checks the rest (edited arguments against the tool's schema)."""
    if not isinstance(pending, dict) or pending.get("type") != "approval":
        return  # an escalation's answer is checked by the node
    if "decisions" not in value:
        parse_decision(value)
        return
    decisions = value["decisions"]
    actions = pending.get("action_requests") or []
    if not isinstance(decisions, list) or not all(isinstance(d, dict) for d in decisions):
        raise InvalidResume("'decisions' must be a list of objects like {'type': 'approve'}")
    if len(decisions) != len(actions):
        raise InvalidResume(f"{len(decisions)} decision(s) for {len(actions)} held action(s); "
                            "send one per action, in order")
    for index, (decision, config) in enumerate(
            zip(decisions, pending.get("review_configs") or [{}] * len(actions), strict=False)):
        allowed = list(config.get("allowed_decisions") or ALL_DECISIONS)
        if decision.get("type") not in allowed:
            raise InvalidResume(f"decisions[{index}].type must be one of {', '.join(allowed)}, "
                                f"got {decision.get('type')!r}")


__all__ = ["PREFIX", "RunsAPI"]
