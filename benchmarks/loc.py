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


def python_code_lines(source: str) -> int:
    docs = docstring_lines(source)
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in NOT_CODE:
            continue
        code.update(line for line in range(token.start[0], token.end[0] + 1) if line not in docs)
    return len(code)


def yaml_code_lines(source: str) -> int:
    """Lines that are not blank or comments (a block scalar's lines are the prompt's text)."""
    return sum(1 for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def code_lines(path: Path) -> int:
    source = Path(path).read_text()
    if Path(path).suffix in (".yaml", ".yml"):
        return yaml_code_lines(source)
    return python_code_lines(source)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{code_lines(Path(name)):5d}  {name}")
