"""The line counter of section 7 counts code lines only, and the section's ratio comes from the
real files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = '''"""A module docstring
over two lines."""

import os  # a comment after code counts as code


# a comment alone
class Shop:
    """A class docstring."""

    name: str = "x"
    """An attribute docstring (accord's field style)."""

    def total(self, items):
        """A method docstring."""
        text = """a string that is a value,
not a docstring"""
        return sum(
            item for item in items
        ) + len(text)
'''
"""Code lines: 4 (import), 8 (class), 11 (name), 14 (def), 16-17 (the value string), 18-20."""

YAML = """# a comment
- id: a

  purpose: x   # a trailing comment is still a line of data
  system_prompt: |
    one
    two
- id: b
"""


def loc():
    spec = importlib.util.spec_from_file_location("desk_loc", ROOT / "benchmarks" / "loc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def section():
    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", ROOT / "benchmarks" / "__init__.py",
            submodule_search_locations=[str(ROOT / "benchmarks")])
        module = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = module
        spec.loader.exec_module(module)
    return importlib.import_module("benchmarks.s7_lines")


def test_a_known_snippet_counts_its_code_lines_only(tmp_path):
    counter = loc()
    assert counter.python_code_line_numbers(SNIPPET) == {4, 8, 11, 14, 16, 17, 18, 19, 20}
    (tmp_path / "a.py").write_text(SNIPPET)
    (tmp_path / "a.yaml").write_text(YAML)
    assert counter.code_lines(tmp_path / "a.py") == 9
    assert counter.code_lines(tmp_path / "a.yaml") == 6
    assert counter.yaml_block_lines(tmp_path / "a.yaml", "system_prompt") == {5, 6, 7}
    assert counter.lines_of(tmp_path / "a.py", {"Shop"}) == set(range(8, 21))


def test_the_ratio_is_computed_from_the_real_files(tmp_path):
    s7 = section()
    counter = loc()
    ours = sum(counter.code_lines(ROOT / f) for f in s7.ACCORD)
    theirs = sum(counter.code_lines(ROOT / f) for f in s7.HANDWRITTEN)
    assert ours > 50 and theirs > 100  # the real files, not stubs
    assert s7.ratio() == ours / theirs
    # a line of code added to the accord side moves the figure
    for name in s7.ACCORD + s7.HANDWRITTEN:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    with (tmp_path / s7.ACCORD[0]).open("a") as file:
        file.write("\nEXTRA = 1\n# not code\n")
    assert s7.ratio(tmp_path) == (ours + 1) / theirs
    same_ours, same_theirs = s7.content_lines()
    assert 0 < same_ours < ours and 0 < same_theirs < theirs
