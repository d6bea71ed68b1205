"""Entry point: ``.venv/bin/python -P benchmarks/run.py [--quick]`` from the repository root.

The folder is loaded as the package ``benchmarks`` by file location, so nothing is added to
``sys.path``: the repository root (whose folders ``agents/``, ``graphs/`` ... would shadow
installed distributions) never becomes importable as bare names.
"""

import importlib
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _package() -> None:
    if "benchmarks" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "benchmarks", HERE / "__init__.py", submodule_search_locations=[str(HERE)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = module
    spec.loader.exec_module(module)


if __name__ == "__main__":
    _package()
    sys.exit(importlib.import_module("benchmarks.main").main())
