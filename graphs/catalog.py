"""Finding a graph by reference: what ``accord run REF`` and ``--graph REF`` accept.

A reference is, in this order:

- a name in accord's catalog (``support``);
- a graph id of the ``langgraph.json`` in the current directory (the file it names is loaded);
- ``path/to/file.py:attr``, a Python file (relative to the current directory or absolute);
- ``package.module:attr``, a module importable from the current directory or installed.

``attr`` may be a :class:`~accord.graphs.Workflow`, a graph compiled from one, or a factory
that returns either (called with no arguments). The workflow records a reference any process
can load again (a file is recorded by its absolute path), so ``accord resume`` and ``show``
find a thread's graph without being told.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from accord.graphs.builder import Workflow
from accord.graphs.errors import UnknownGraph

CATALOG: dict[str, str] = {
    "support": "accord.graphs.support:build_support",
    "desk": "accord.graphs.desk:build_desk",
}

LANGGRAPH_JSON = "langgraph.json"


def load_workflow(ref: str, **kwargs: Any) -> Workflow:
    """The workflow a reference names (see the module docstring); ``UnknownGraph`` when it
    names none. ``kwargs`` go to a factory."""
    target, recorded = _resolve(ref)
    found = _import(target, ref)
    if callable(found) and not isinstance(found, Workflow) and _workflow_of(found) is None:
        found = found(**kwargs)
    workflow = _workflow_of(found)
    if workflow is None:
        raise UnknownGraph(f"{ref!r} names a {type(found).__name__}, not an accord Workflow, "
                           "a graph compiled from one, or a factory of either")
    workflow.source = recorded  # recorded with its threads, so any process can load it again
    return workflow


def loadable(ref: str | None) -> bool:
    """Whether :func:`load_workflow` knows where to look for ``ref``: a catalog name, a graph id
    of ``./langgraph.json`` or a ``file.py:attr`` / ``module:attr`` reference."""
    return bool(ref) and (ref in CATALOG or ":" in ref or ref in _langgraph_json_graphs())


def _workflow_of(found: Any) -> Workflow | None:
    if isinstance(found, Workflow):
        return found
    engine = getattr(found, "engine", None)  # an AccordGraph keeps the workflow it came from
    workflow = getattr(engine, "workflow", None)
    return workflow if isinstance(workflow, Workflow) else None


def _resolve(ref: str) -> tuple[str, str]:
    """``(what to import, the reference to record)``."""
    if ref in CATALOG:
        return CATALOG[ref], ref
    declared = _langgraph_json_graphs()
    if ref in declared:
        file, _, attr = declared[ref].rpartition(":")
        path = (Path.cwd() / file).resolve()
        return f"{path}:{attr}", f"{path}:{attr}"
    module, sep, attr = ref.rpartition(":")
    if not sep or not module or not attr:
        known = sorted({*CATALOG, *declared})
        raise UnknownGraph(f"unknown graph {ref!r}; known graphs: {', '.join(known)} "
                           "(or give path/to/file.py:attr or package.module:attr)")
    if _is_file(module):
        path = Path(module).expanduser().resolve()
        return f"{path}:{attr}", f"{path}:{attr}"
    return ref, _portable(module, attr)


def _portable(module: str, attr: str) -> str:
    """A top-level module found only in the current directory is recorded as its file, so a
    thread started here can be resumed from anywhere."""
    candidate = Path.cwd() / f"{module}.py"
    if "." in module or not candidate.is_file():
        return f"{module}:{attr}"
    return f"{candidate.resolve()}:{attr}"


def _is_file(module: str) -> bool:
    return module.endswith(".py") or "/" in module or "\\" in module


def _langgraph_json_graphs() -> dict[str, str]:
    """The ``graphs`` of ``./langgraph.json`` (nothing when there is none or it is unreadable)."""
    path = Path.cwd() / LANGGRAPH_JSON
    try:
        graphs = json.loads(path.read_text()).get("graphs") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: v for k, v in graphs.items() if isinstance(v, str) and ":" in v}


def _import(target: str, ref: str) -> Any:
    module, _, attr = target.rpartition(":")
    try:
        obj = _load_file(module) if _is_file(module) else _load_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, OSError) as exc:
        raise UnknownGraph(f"cannot load graph {ref!r}: {exc}") from None
    return obj


def _load_module(name: str) -> Any:
    """Import a module; the current directory is searched too, as ``python -m`` would."""
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    return importlib.import_module(name)


def _load_file(file: str) -> Any:
    """Import a Python file as a module of its own (its folder is searched for its imports)."""
    path = Path(file)
    if not path.is_file():
        raise ImportError(f"no such file: {path}")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"accord_graph_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
