"""Section 7: lines of code of one workflow, the publishing desk, in accord and by hand.

Both versions act on the same newsroom (``graphs/desk/newsroom.py``: its database, tools and
drafting rules), which neither side counts. Counted: code lines (``benchmarks/loc.py``: no blank
lines, comments or docstrings; YAML without blanks and comments).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.env import BenchEnv
from benchmarks.loc import code_line_numbers, lines_of, yaml_block_lines
from benchmarks.stats import Section, Table

ROOT = Path(__file__).resolve().parents[1]
ACCORD = ("graphs/desk/workflow.py", "graphs/desk/agents.py", "graphs/desk/specs/desk_agents.yaml")
HANDWRITTEN = ("benchmarks/desk_langgraph.py",)
SHARED = ("graphs/desk/newsroom.py",)
TARGET = 1 / 3
"""accord's lines at most this share of the hand-written ones."""
CONTENT = {"PROMPTS", "Failed", "drafter_rules", "fact_checker_rules", "editor_rules",
           "publisher_rules", "RULES"}
"""What the hand-written file holds that accord's holds too: the prompts and the rule-based
twins (accord: the specs' system prompts and ``agents.py``)."""


def count(files: tuple[str, ...], root: Path = ROOT) -> dict[str, int]:
    return {f: len(code_line_numbers(root / f)) for f in files}


def content_lines(root: Path = ROOT) -> tuple[int, int]:
    """Code lines of the prompts and rule-based twins: ``(accord, hand-written)``."""
    specs = root / ACCORD[2]
    accord = (len(code_line_numbers(root / ACCORD[1]))
              + len(code_line_numbers(specs) & yaml_block_lines(specs, "system_prompt")))
    hand = root / HANDWRITTEN[0]
    return accord, len(code_line_numbers(hand) & lines_of(hand, CONTENT))


def ratio(root: Path = ROOT) -> float:
    """accord's code lines over the hand-written ones, from the files themselves."""
    return sum(count(ACCORD, root).values()) / sum(count(HANDWRITTEN, root).values())


def run(env: BenchEnv, progress: Any) -> Section:
    ours, theirs, shared = count(ACCORD), count(HANDWRITTEN), count(SHARED)
    table = Table("Code lines of the publishing desk", ["version", "file", "code lines"])
    for file, n in ours.items():
        table.add("accord", f"`{file}`", str(n))
    for file, n in theirs.items():
        table.add("plain LangGraph", f"`{file}`", str(n))
    for file, n in shared.items():
        table.add("both (not counted)", f"`{file}`", str(n))
    total, hand = sum(ours.values()), sum(theirs.values())
    same_ours, same_theirs = content_lines()
    split = Table("Where the lines go", ["part", "accord", "plain LangGraph"])
    split.add("prompts and rule-based twins (the same content)", str(same_ours), str(same_theirs))
    split.add("orchestration (everything else)", str(total - same_ours), str(hand - same_theirs))
    split.add("all", str(total), str(hand))
    share = total / hand
    orchestration = (total - same_ours) / (hand - same_theirs)
    met = share <= TARGET
    verdict = (f"**Target (accord ≤ 1/3 of the hand-written lines): {'met' if met else 'missed'}** "
               f"— {total} against {hand} code lines, {share:.2f}×; orchestration alone "
               f"{orchestration:.2f}×. The prompts and the rule-based twins are the same content on "
               "both sides; accord saves the rest: the state, the transition check, the handoff "
               "tools, the fallback, the approval node with its checked resume value and the "
               "idempotency keys, which the hand-written version spells out (and it still has no "
               "thread lock, thread index, audit log, tool ledger or input guardrails).")
    method = ("The desk (a drafter, a fact-checker that may send a draft back, an editor, a "
              "publisher whose publish to more than 10,000 readers waits for approval; LLM "
              "agents with rule-based twins) in accord (`graphs/desk/`) and hand-written in "
              "plain LangGraph (`benchmarks/desk_langgraph.py`, with a checkpointer, an "
              "`interrupt()` approval, idempotency keys for exactly-once side effects, a "
              "transition check and fallbacks). Both run end to end in the tests "
              "(`tests/core/test_desk.py`, `tests/benchmarks/test_desk_langgraph.py`). Code "
              "lines from `benchmarks/loc.py` (`tokenize` and `ast`: no blank lines, comments "
              "or docstrings; YAML: no blank or comment lines).")
    return Section(7, "Lines of code: the publishing desk", method, [table, split], verdict,
                   headline=f"accord {total} vs plain LangGraph {hand} code lines ({share:.2f}×; "
                            f"orchestration {orchestration:.2f}×); target ≤ 0.33×: "
                            f"{'met' if met else 'missed'}")
