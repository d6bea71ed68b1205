"""Model and tool calls, observed through LangChain's callbacks.

Every chat model and tool accord runs is a LangChain runnable, inside an agent's own loop
(``create_agent``), the router's LLM tier or a rule-based agent's tool box. During a run the
engine's observation puts one :class:`CallObserver` in the run's context (``observe_calls``); a
configure hook adds it to every callback manager made inside, so every call gets a span
(``accord.model``, ``accord.tool``: a child of the agent step or routing decision that made it),
its tokens and outcome counted per agent and model, and a log line.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from accord.observability.context import current, line_fields, log
from accord.observability.metrics import metrics
from accord.observability.runs import current_run
from accord.observability.traces import attrs, tracer

logger = logging.getLogger("accord.run")

_OBSERVER: ContextVar[BaseCallbackHandler | None] = ContextVar("accord_call_observer",
                                                               default=None)
_hooked: list[bool] = []


def _hook() -> None:
    """Register the configure hook once per process (on first use, never at import)."""
    if not _hooked:
        from langchain_core.tracers.context import register_configure_hook

        register_configure_hook(_OBSERVER, inheritable=True)
        _hooked.append(True)


class _Call:
    __slots__ = ("agent", "fields", "model", "span", "started", "tool")

    def __init__(self, span: trace.Span, agent: str, model: str | None = None,
                 tool: str | None = None) -> None:
        self.span, self.agent, self.model, self.tool = span, agent, model, tool
        self.started = time.perf_counter()
        self.fields = line_fields() if logger.isEnabledFor(logging.INFO) else {}


def _usage(response: Any) -> tuple[int, int]:
    """Input and output tokens of an ``LLMResult``."""
    tokens_in = tokens_out = 0
    for generations in getattr(response, "generations", None) or ():
        for generation in generations:
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
            tokens_in += int(usage.get("input_tokens") or 0)
            tokens_out += int(usage.get("output_tokens") or 0)
    if not (tokens_in or tokens_out):
        usage = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
        tokens_in = int(usage.get("prompt_tokens") or 0)
        tokens_out = int(usage.get("completion_tokens") or 0)
    return tokens_in, tokens_out


class CallObserver(BaseCallbackHandler):
    """Spans, metrics and lines for one run's model and tool calls."""

    run_inline = True
    ignore_chain = True
    ignore_retriever = True

    def __init__(self) -> None:
        self.calls: dict[UUID, _Call] = {}

    @staticmethod
    def _who() -> str:
        fields = current()
        return str(fields.get("agent") or fields.get("node") or "")

    # models ---------------------------------------------------------------------------------
    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, *, run_id: UUID,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._model_start(serialized, run_id, metadata)

    def on_llm_start(self, serialized: dict[str, Any], prompts: Any, *, run_id: UUID,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._model_start(serialized, run_id, metadata)

    def _model_start(self, serialized: dict[str, Any] | None, run_id: UUID,
                     metadata: dict[str, Any] | None) -> None:
        metadata = metadata or {}
        model = str(metadata.get("ls_model_name") or (serialized or {}).get("name") or "model")
        agent = self._who()
        span = tracer().start_span(f"accord.model {model}", attributes=attrs(**{
            "accord.agent": agent, "gen_ai.request.model": model,
            "gen_ai.system": metadata.get("ls_provider")}))
        self.calls[run_id] = _Call(span, agent, model=model)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        call = self.calls.pop(run_id, None)
        if call is None:
            return
        tokens_in, tokens_out = _usage(response)
        m = metrics()
        m.model_calls.labels(call.agent, call.model, "ok").inc()
        m.tokens.labels(call.agent, call.model, "input").inc(tokens_in)
        m.tokens.labels(call.agent, call.model, "output").inc(tokens_out)
        run = current_run()
        if run is not None:
            run.add_tokens(tokens_in, tokens_out)
        call.span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
        call.span.set_attribute("gen_ai.usage.output_tokens", tokens_out)
        call.span.end()
        log(logger, "model call %s", call.model, base=call.fields,
            event="model_call", model=call.model, outcome="ok", tokens_in=tokens_in,
            tokens_out=tokens_out, latency_ms=self._ms(call))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        call = self.calls.pop(run_id, None)
        if call is None:
            return
        metrics().model_calls.labels(call.agent, call.model, "error").inc()
        self._failed(call, error)
        log(logger, "model call %s failed: %s", call.model, type(error).__name__,
            base=call.fields,
                        event="model_call", model=call.model, outcome="error",
                        error=f"{type(error).__name__}: {error}", latency_ms=self._ms(call))

    # tools ----------------------------------------------------------------------------------
    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID,
                      **kwargs: Any) -> None:
        tool = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        parent = self.calls.get(kwargs.get("parent_run_id"))
        if parent is not None and parent.tool == tool:
            return  # the tool itself, inside the call accord bound its key to: one call
        agent = self._who()
        span = tracer().start_span(f"accord.tool {tool}", attributes=attrs(**{
            "accord.agent": agent, "accord.tool": tool}))
        self.calls[run_id] = _Call(span, agent, tool=tool)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        call = self.calls.pop(run_id, None)
        if call is None:
            return
        metrics().tool_calls.labels(call.agent, call.tool, "ok").inc()
        call.span.end()
        log(logger, "tool call %s", call.tool, base=call.fields,
            event="tool_call", tool=call.tool, outcome="ok", latency_ms=self._ms(call))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        call = self.calls.pop(run_id, None)
        if call is None:
            return
        metrics().tool_calls.labels(call.agent, call.tool, "error").inc()
        self._failed(call, error)
        log(logger, "tool call %s failed: %s", call.tool, type(error).__name__,
            base=call.fields,
                        event="tool_call", tool=call.tool, outcome="error",
                        error=f"{type(error).__name__}: {error}", latency_ms=self._ms(call))

    @staticmethod
    def _failed(call: _Call, error: BaseException) -> None:
        call.span.record_exception(error)
        call.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        call.span.end()

    def close(self) -> None:
        """End the spans of calls the run abandoned (cancelled, failed mid-call)."""
        for call in self.calls.values():
            call.span.end()
        self.calls.clear()

    @staticmethod
    def _ms(call: _Call) -> float:
        return round((time.perf_counter() - call.started) * 1000, 3)


def observe_calls() -> CallObserver:
    """Observe the model and tool calls made in the current context from now on (a context
    made for one run; :meth:`CallObserver.close` ends what the run abandoned)."""
    _hook()
    observer = CallObserver()
    _OBSERVER.set(observer)
    return observer


__all__ = ["CallObserver", "observe_calls"]
