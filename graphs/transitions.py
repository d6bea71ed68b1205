"""The transition table: the single source of truth for a workflow's edges, checked at build."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from langgraph.graph import END

from accord.graphs.errors import WorkflowBuildError


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
