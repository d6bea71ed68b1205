"""The transition table: the single source of truth for a workflow's edges, checked at build
time (:class:`TransitionTable`) and at run time (:class:`Transitions`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph import END
from langgraph.types import Command, Overwrite

from accord.graphs.errors import HopBudgetExceeded, IllegalTransition, WorkflowBuildError
from accord.graphs.state import HOPS_RESET
from accord.records import AuditKind, TaskStatus, audit_event, utcnow


class TransitionTable:
    """``from -> allowed targets``; ``END`` is written ``"END"`` or ``langgraph.graph.END``."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.edges: dict[str, tuple[str, ...]] = {
            src: tuple(dict.fromkeys(END if t in ("END", END) else t for t in targets))
            for src, targets in table.items()
        }

    def allows(self, src: str, dst: str) -> bool:
        return dst in self.edges.get(src, ())

    def targets(self, src: str) -> tuple[str, ...]:
        return self.edges.get(src, ())

    def pairs(self) -> set[tuple[str, str]]:
        return {(s, t) for s, ts in self.edges.items() for t in ts}

    def with_finish_path(self, router: str) -> TransitionTable:
        """Every node that returns to the router may end the run when its task is finished.

        The router would only close the task (its ``finish`` tier); the node does it inline,
        saving a super-step, and the drawing shows the edge.
        """
        table = {
            src: (*targets, END) if router in targets and src != router else targets
            for src, targets in self.edges.items()
        }
        return TransitionTable(table)

    def with_return_path(self, approvals: Sequence[str]) -> TransitionTable:
        """Every approval node may return to the nodes that send actions to it: the agent that
        proposed an action gets the decision back and decides what comes next."""
        back = {a: [src for src, targets in self.edges.items() if a in targets and src != a]
                for a in approvals}
        table = {src: (*targets, *(b for b in back.get(src, ()) if b not in targets))
                 for src, targets in self.edges.items()}
        return TransitionTable(table)

    def with_error_path(self, error_node: str | None) -> TransitionTable:
        """Every node may go to the declared error node (it is part of the table)."""
        if error_node is None:
            return self
        table = {
            src: (*targets, error_node) if src != error_node else targets
            for src, targets in self.edges.items()
        }
        return TransitionTable(table)

    def validate(
        self,
        *,
        nodes: Mapping[str, str],
        entry: str,
        max_hops: int | None,
        error_node: str | None = None,
    ) -> None:
        """Reject a bad graph with a message naming the node.

        ``nodes`` maps node name -> kind (``router``, ``agent``, ``approval``, ``node``).
        ``error_node`` is reachable from every node through the error path, so it needs no
        declared edge into it.
        """
        known = set(nodes)
        if entry not in known:
            raise WorkflowBuildError(f"entry node {entry!r} is not a node", node=entry)
        for src, targets in self.edges.items():
            if src not in known:
                raise WorkflowBuildError(
                    f"transitions declared from unknown node {src!r}", node=src
                )
            for dst in targets:
                if dst != END and dst not in known:
                    raise WorkflowBuildError(
                        f"node {src!r} has an unknown target {dst!r}", node=dst
                    )
        for name in sorted(known):
            if not self.edges.get(name):
                raise WorkflowBuildError(f"node {name!r} has no outgoing transitions", node=name)
        incoming = {dst for _, dst in self.pairs()} | ({error_node} if error_node else set())
        for name, kind in sorted(nodes.items()):
            if kind == "agent" and name not in incoming and name != entry:
                raise WorkflowBuildError(
                    f"agent {name!r} has no way in: no transition targets it", node=name
                )
        reachable = self._reach(entry, self.edges)
        if error_node is not None and error_node in known:
            reachable |= self._reach(error_node, self.edges)
        for name in sorted(known - reachable):
            raise WorkflowBuildError(f"node {name!r} is unreachable from START", node=name)
        reverse: dict[str, list[str]] = {}
        for src, dst in self.pairs():
            reverse.setdefault(dst, []).append(src)
        can_end = self._reach(END, reverse)
        for name in sorted(known - can_end):
            raise WorkflowBuildError(f"node {name!r} cannot reach END", node=name)
        cycle = self.find_cycle()
        if cycle and max_hops is None:
            raise WorkflowBuildError(
                f"cycle {' -> '.join(cycle)} needs a hop budget: pass max_hops",
                node=cycle[0],
            )

    @staticmethod
    def _reach(start: str, edges: Mapping[str, Sequence[str]]) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def find_cycle(self) -> list[str] | None:
        """One cycle as a closed path of node names, or ``None``."""
        state: dict[str, int] = {}
        path: list[str] = []

        def visit(node: str) -> list[str] | None:
            state[node] = 1
            path.append(node)
            for nxt in self.edges.get(node, ()):
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if nxt not in state:
                    found = visit(nxt)
                    if found:
                        return found
            path.pop()
            state[node] = 2
            return None

        for node in sorted(self.edges):
            if node not in state:
                found = visit(node)
                if found:
                    return found
        return None


@dataclass(frozen=True)
class Step:
    """What a node proposes: the next node and its state update."""

    goto: str | Sequence[str]
    """Proposed next node, or several to run in parallel (checked against the table)."""
    update: dict[str, Any] = field(default_factory=dict)
    """State update."""


@dataclass
class Transitions:
    """The run-time check: applies the transition table and the hop budget to a proposed step."""

    table: TransitionTable
    max_hops: int | None
    error_node: str | None
    router: str | None = None
    """The router's node: a step back to it with a finished task ends the run instead."""
    merges: Mapping[str, str] = field(default_factory=dict)

    def command(self, src: str, state: Mapping[str, Any], step: Step) -> Command:
        """Check a proposed step; an undeclared target is recorded and sent to the error path.

        ``step.goto`` may name several targets: they run in parallel (a fan-out) and their
        shared-context writes meet the declared merge functions.
        """
        update = dict(step.update)
        audit = list(update.pop("audit", []))
        errors = list(update.pop("errors", []))
        targets = self._checked(src, step, audit, errors)
        audit.extend(self._finished_tasks(src, state, update))
        if self._closes(src, targets, state, update):
            task = self._task_status(state, update)
            audit.append(audit_event(AuditKind.ROUTE, node=self.router, tier="finish", target=END,
                                     reason=f"task {task}", confidence=None))
            targets = [END]
        reset = update.get("hops") == HOPS_RESET
        hops = (0 if reset else int(state.get("hops") or 0)) + 1
        ending = all(t == END for t in targets)
        if self.max_hops is not None and hops > self.max_hops and not ending:
            raise HopBudgetExceeded(budget=self.max_hops, node=src, target=",".join(targets))
        update["hops"] = HOPS_RESET if reset else 1
        for target in targets:
            audit.append(audit_event(AuditKind.TRANSITION, node=src, target=target, hop=hops))
        # a new request starts the audit window afresh (the log keeps every event)
        update["audit"] = Overwrite(audit) if reset else audit
        if errors or reset:
            update["errors"] = Overwrite(errors) if reset else errors
        return Command(goto=targets[0] if len(targets) == 1 else targets, update=update)

    def _checked(self, src: str, step: Step, audit: list, errors: list) -> list[str]:
        wanted = [step.goto] if isinstance(step.goto, str) else list(step.goto)
        targets: list[str] = []
        for goto in (END if g == "END" else g for g in wanted):
            if not self.table.allows(src, goto):
                audit.append(audit_event(AuditKind.ILLEGAL_TRANSITION, node=src, target=goto))
                errors.append({"at": utcnow(), "node": src,
                               "error": f"illegal transition {src} -> {goto}"})
                if self.error_node is None or not self.table.allows(src, self.error_node):
                    raise IllegalTransition(
                        f"illegal transition {src} -> {goto} and no error path is declared"
                    )
                goto = self.error_node
            if goto not in targets:
                targets.append(goto)
        return targets

    @staticmethod
    def _task_status(state: Mapping[str, Any], update: Mapping[str, Any]) -> str | None:
        task_id = update.get("active_task") or state.get("active_task")
        if not task_id:
            return None
        record = {**((state.get("tasks") or {}).get(task_id) or {}),
                  **((update.get("tasks") or {}).get(task_id) or {})}
        return record.get("status")

    def _closes(self, src: str, targets: list[str], state: Mapping[str, Any],
                update: Mapping[str, Any]) -> bool:
        if self.router is None or src == self.router or targets != [self.router]:
            return False
        status = self._task_status(state, update)
        return status is not None and TaskStatus(status).finished and self.table.allows(src, END)

    @staticmethod
    def _finished_tasks(src: str, state: Mapping[str, Any], update: Mapping[str, Any]) -> list:
        """A ``task_finished`` event (with the final record) for each task this step finishes."""
        events = []
        for task_id, change in (update.get("tasks") or {}).items():
            if not isinstance(change, dict) or "status" not in change:
                continue
            if not TaskStatus(change["status"]).finished:
                continue
            before = (state.get("tasks") or {}).get(task_id) or {}
            if before.get("status") == change["status"]:
                continue
            events.append(audit_event(AuditKind.TASK_FINISHED, node=src, task_id=task_id,
                                      task={**before, **change}))
        return events
