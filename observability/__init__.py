"""accord.observability: logs, traces and metrics of every run, whatever started it.

- ``context``: the log context (graph, thread, run, agent and version, node, task, attempt,
  trace id) every line about a run carries; ``ContextFilter`` for stdlib handlers;
- ``logs``: ``configure_logging`` for the edges (CLI, servers, workers): JSON lines or console;
- ``traces``: accord's tracer (OTLP, console or none by ``ACCORD_OTEL_EXPORTER``), W3C context;
- ``metrics``: the Prometheus families (``accord_*``) and the pending-approvals collector;
- ``runs``, ``steps``, ``calls``, ``events``: what the engine, the nodes, LangChain's callbacks
  and accord's saver call to observe a run;
- ``notify``, ``notices``: notifications (Slack-compatible webhook, SMTP email) of approval
  waits, dead letters and flagged agents, sent in the background;
- ``alerts``, ``thresholds``: rogue-agent alerts (error rate, guardrail trips, rejections,
  tokens, cost per agent over a sliding window), which may switch an agent off.
"""

from accord.observability.context import ContextFilter, bound, current, line_fields
from accord.observability.logs import configure_logging
from accord.observability.metrics import Metrics, PendingApprovals, metrics
from accord.observability.traces import (
    TraceExporter,
    TracingConfigError,
    context_of,
    traceparent,
    tracer,
    use_provider,
)

__all__ = [
    "ContextFilter",
    "Metrics",
    "PendingApprovals",
    "TraceExporter",
    "TracingConfigError",
    "bound",
    "configure_logging",
    "context_of",
    "current",
    "line_fields",
    "metrics",
    "traceparent",
    "tracer",
    "use_provider",
]
