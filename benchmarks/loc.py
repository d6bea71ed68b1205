"""Code lines of a source file: no blank lines, comments or docstrings.

Python is read with ``tokenize`` (which lines hold a token that is code) and ``ast`` (which
string statements are docstrings: a bare string expression, the first statement of a module,
class or function, or one after an attribute, as accord documents its fields). YAML counts its
lines that are neither blank nor comments. ``.venv/bin/python -P benchmarks/loc.py FILE...``
prints the count of each file.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}


def docstring_lines(source: str) -> set[int]:
    """Line numbers covered by string statements (docstrings), from the syntax tree."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def python_code_line_numbers(source: str) -> set[int]:
    """The numbers of the lines that hold code."""
    docs = docstring_lines(source)
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in NOT_CODE:
            continue
        code.update(line for line in range(token.start[0], token.end[0] + 1) if line not in docs)
    return code


def yaml_code_line_numbers(source: str) -> set[int]:
    """Lines that are not blank or comments (a block scalar's lines are the prompt's text)."""
    return {n for n, line in enumerate(source.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")}


def code_line_numbers(path: Path) -> set[int]:
    source = Path(path).read_text()
    if Path(path).suffix in (".yaml", ".yml"):
        return yaml_code_line_numbers(source)
    return python_code_line_numbers(source)


def code_lines(path: Path) -> int:
    """Code lines of a Python or YAML file."""
    return len(code_line_numbers(path))


def python_code_lines(source: str) -> int:
    return len(python_code_line_numbers(source))


def lines_of(path: Path, names: set[str]) -> set[int]:
    """Line numbers of a Python file's top-level definitions and assignments named ``names``."""
    spans: set[int] = set()
    for node in ast.parse(Path(path).read_text()).body:
        targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if getattr(node, "name", None) in names or set(targets) & names:
            spans.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return spans


def yaml_block_lines(path: Path, key: str) -> set[int]:
    """Line numbers of a YAML file's ``key: |`` block scalars (their key line included)."""
    spans: set[int] = set()
    indent: int | None = None
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        width = len(line) - len(line.lstrip())
        if indent is not None and line.strip() and width <= indent:
            indent = None
        if line.strip().startswith(f"{key}:"):
            indent = width
            spans.add(n)
        elif indent is not None:
            spans.add(n)
    return spans


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{code_lines(Path(name)):5d}  {name}")
