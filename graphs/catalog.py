"""The graphs accord knows by name; any ``package.module:factory`` works too."""

from __future__ import annotations

from typing import Any

from accord.agents.spec import import_object
from accord.graphs.builder import Workflow
from accord.graphs.errors import UnknownGraph

CATALOG: dict[str, str] = {
    "support": "accord.graphs.support:build_support",
}


def load_workflow(name: str, **kwargs: Any) -> Workflow:
    """A graph's workflow by catalog name or ``package.module:factory`` path."""
    path = CATALOG.get(name, name)
    if ":" not in path:
        raise UnknownGraph(f"unknown graph {name!r}; known graphs: {', '.join(sorted(CATALOG))}")
    try:
        found = import_object(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UnknownGraph(f"cannot load graph {name!r}: {exc}") from None
    if isinstance(found, Workflow):
        workflow = found
    elif callable(found):
        workflow = found(**kwargs)
        if not isinstance(workflow, Workflow):
            raise UnknownGraph(f"{path} returned {type(workflow).__name__}, not a Workflow")
    else:
        raise UnknownGraph(f"{path} is a {type(found).__name__}, not a Workflow or a factory")
    workflow.source = name  # recorded with its threads, so any process can load it again
    return workflow
