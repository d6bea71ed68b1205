"""When an agent is flagged: the thresholds of ``accord.observability.alerts``.

From Python (:class:`AlertThresholds`), a YAML file (:meth:`AlertThresholds.from_yaml`, the
top level or an ``alerts:`` section) or the environment (:meth:`AlertThresholds.from_env`:
``ACCORD_ALERTS_FILE``, then each ``ACCORD_ALERT_*`` variable over it). Every check is off by
default; an invalid value raises :class:`AlertConfigError` before anything is judged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from accord.errors import AccordError


class AlertConfigError(AccordError):
    """An alert threshold is invalid (not a number, a rate outside 0..1, an unreadable file)."""


@dataclass(frozen=True)
class AlertThresholds:
    """When an agent is flagged (None: that check is off; all are off by default)."""

    window_seconds: float = 600.0
    """The sliding window the counts cover (``ACCORD_ALERT_WINDOW``)."""
    min_runs: int = 5
    """Runs of the agent in the window before its error rate counts (``ACCORD_ALERT_MIN_RUNS``)."""
    error_rate: float | None = None
    """Failed share of the agent's runs, 0..1 (``ACCORD_ALERT_ERROR_RATE``)."""
    guardrail_trips: int | None = None
    """Guardrail trips of the agent in the window (``ACCORD_ALERT_GUARDRAIL_TRIPS``)."""
    rejection_rate: float | None = None
    """Rejected share of reviewers' decisions on its actions, 0..1
    (``ACCORD_ALERT_REJECTION_RATE``)."""
    min_decisions: int = 3
    """Decisions in the window before the rejection rate counts (``ACCORD_ALERT_MIN_DECISIONS``)."""
    tokens: int | None = None
    """Tokens the agent used in the window (``ACCORD_ALERT_TOKENS``)."""
    cost: float | None = None
    """USD the agent spent today, from ``accord_usage`` (``ACCORD_ALERT_COST``)."""
    disable: bool = False
    """Switch a flagged agent off (its fallback answers) (``ACCORD_ALERT_DISABLE``)."""

    def __post_init__(self) -> None:
        for name in ("error_rate", "rejection_rate"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise AlertConfigError(f"alert {name} {value!r} is not a share between 0 and 1")
        if self.window_seconds <= 0 or self.min_runs < 1 or self.min_decisions < 1:
            raise AlertConfigError("alert window, min_runs and min_decisions must be positive")

    @property
    def enabled(self) -> bool:
        """Whether any check is on."""
        return any(v is not None for v in (self.error_rate, self.guardrail_trips,
                                           self.rejection_rate, self.tokens, self.cost))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AlertThresholds:
        """Thresholds from a mapping of field names (a YAML file's ``alerts`` section)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise AlertConfigError(f"unknown alert setting(s): {', '.join(unknown)}")
        out: dict[str, Any] = {}
        for name, value in values.items():
            out[name] = _parse(name, value, cls.__dataclass_fields__[name].default)
        return cls(**out)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AlertThresholds:
        """Thresholds from a YAML file (top level or under ``alerts:``)."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise AlertConfigError(f"cannot read alert settings {path}: {exc}") from None
        if not isinstance(data, dict):
            raise AlertConfigError(f"alert settings {path} are not a mapping")
        return cls.from_mapping(data.get("alerts", data))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertThresholds:
        """``ACCORD_ALERTS_FILE`` (YAML), then each ``ACCORD_ALERT_*`` variable over it."""
        env = os.environ if env is None else env
        base = cls.from_yaml(env["ACCORD_ALERTS_FILE"]) if env.get("ACCORD_ALERTS_FILE") else cls()
        values = {f.name: getattr(base, f.name) for f in fields(cls)}
        names = {"window_seconds": "WINDOW"}
        for f in fields(cls):
            raw = env.get(f"ACCORD_ALERT_{names.get(f.name, f.name.upper())}")
            if raw not in (None, ""):
                values[f.name] = raw
        return cls.from_mapping(values)


def _parse(name: str, value: Any, default: Any) -> Any:
    if value is None or not isinstance(value, str):
        if name == "disable":
            return bool(value)
        return value
    try:
        if name == "disable":
            if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes", "on")
        if value.lower() in ("", "off", "none"):
            return None
        return int(value) if name in ("min_runs", "min_decisions", "guardrail_trips",
                                      "tokens") else float(value)
    except ValueError:
        raise AlertConfigError(f"alert {name} {value!r} is not a valid value") from None


__all__ = ["AlertConfigError", "AlertThresholds"]
