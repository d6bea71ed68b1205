"""accord.errors: the root of every error accord raises on purpose.

Every typed error in accord derives from :class:`AccordError`, whichever room defines it
(``accord.graphs``, ``accord.checkpoints``, ``accord.agents``, ``accord.guardrails``,
``accord.engine``). An ``AccordError`` is something a caller can cause or must handle: bad
input, bad configuration, an unreachable database, a busy thread. The CLI turns one into a
single line and exit code 2; anything else reaching it is a bug in accord (exit 1).
"""

from __future__ import annotations


class AccordError(Exception):
    """Base class of every error accord raises on purpose."""


__all__ = ["AccordError"]
