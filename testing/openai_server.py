"""`OpenAICompatServer`: a scripted OpenAI Chat Completions server on 127.0.0.1.

A real HTTP server (stdlib `http.server`, one thread per connection) so the real
`langchain_openai.ChatOpenAI` and OpenAI SDK code paths run end to end, offline.

```python
with OpenAICompatServer(["Hello!"]) as server:
    model = ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url, api_key="test")
    assert model.invoke("hi").content == "Hello!"
    assert server.requests[0]["messages"][-1]["content"] == "hi"
```

Endpoints: `POST /v1/chat/completions` (JSON or `stream: true` SSE, with usage) and
`GET /v1/models`. Replies are scripted as for `ScriptedChatModel`. A `StructuredReply`
is sent as JSON content when the request has a `json_schema` / `json_object`
`response_format` (langchain-openai's default for `with_structured_output`), and as a
tool call otherwise (`method="function_calling"`). When the script is exhausted the
server answers HTTP 400 naming the call (`openai.BadRequestError`, not retried); an
exception reply answers HTTP 500.

Provider faults are scripted like replies (`accord.testing.ProviderFault`): 429 with
`Retry-After`, 500/503, slow replies, hangs (released when the server stops), dropped
connections, malformed JSON and truncated streams. Every request is counted in `requests`,
faults included, so a test reads how often a client retried.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from accord.testing.faults import FaultKind, ProviderFault
from accord.testing.openai_wire import (
    as_ai_message,
    completion_body,
    reply_to_message,
    request_messages,
    stream_chunks,
)
from accord.testing.replies import CountsUsage, Reply, ReplyScript, ScriptExhausted, TokenCounter
from accord.testing.scripted_model import forced_tool_name

__all__ = ["OpenAICompatServer"]


class OpenAICompatServer(CountsUsage):
    """A scripted OpenAI-compatible HTTP server on a free loopback port."""

    def __init__(
        self,
        script: Sequence[Reply] = (),
        *,
        responder: Callable[..., Reply] | None = None,
        latency: float = 0.0,
        chars_per_token: int = 4,
        tokens_per_message: int | None = None,
        model: str = "scripted",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._script = ReplyScript(script, responder, owner="OpenAICompatServer")
        self._tokens = TokenCounter(chars_per_token, tokens_per_message)
        self.latency = latency
        self.model = model
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._errors: list[str] = []
        self._faults: list[FaultKind] = []
        self._arrivals: list[float] = []
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a background thread; returns self."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Server((self._host, self._port), _Handler)
        httpd.daemon_threads = True
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is None:
            return
        self._stopping.set()  # releases hanging requests
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests read --------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("OpenAICompatServer is not started; use it as a context manager")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, `http://127.0.0.1:PORT/v1`."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat completion requests received, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Error messages the server answered with (script exhausted, exception replies)."""
        with self._lock:
            return list(self._errors)

    @property
    def arrivals(self) -> list[float]:
        """`time.monotonic()` at which each request arrived (how long a client waited)."""
        with self._lock:
            return list(self._arrivals)

    @property
    def faults(self) -> list[FaultKind]:
        """The scripted faults acted out so far, in order."""
        with self._lock:
            return list(self._faults)
    @property
    def remaining(self) -> int:
        """Scripted replies not yet consumed."""
        return self._script.remaining

    # -- request handling (called from handler threads) --------------------------------------

    def _complete(
        self, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], int, ProviderFault | None]:
        """(status, assistant message or error body, call number, fault to act out)."""
        with self._lock:
            self._requests.append(body)
            self._arrivals.append(time.monotonic())
        messages = request_messages(body)
        tools = [
            t["function"]["name"]
            for t in body.get("tools") or []
            if t.get("type") == "function" and "function" in t
        ]
        response_format = body.get("response_format")
        schema = None
        if response_format and response_format.get("type") == "json_schema":
            schema = response_format.get("json_schema", {}).get("schema")
        call_number = self._tokens.start_call()
        if self.latency:
            time.sleep(self.latency)
        try:
            reply = self._script.next_reply(call_number, messages, tools=tools, schema=schema)
            if isinstance(reply, ProviderFault):
                with self._lock:
                    self._faults.append(reply.kind)
                fault = reply
                if fault.kind is FaultKind.SLOW:
                    self._stopping.wait(fault.delay)
                elif fault.kind is FaultKind.STATUS:
                    error = self._error(f"provider fault: HTTP {fault.status_code}",
                                        "rate_limit_error" if fault.status_code == 429
                                        else "server_error")
                    return fault.status_code, error, call_number, fault
                elif fault.kind is not FaultKind.TRUNCATED:
                    return 0, {}, call_number, fault
                reply = fault.reply
            else:
                fault = None
            if isinstance(reply, BaseException):
                raise reply
            message = reply_to_message(
                reply,
                call_number,
                tools=tools,
                forced=forced_tool_name(body.get("tool_choice")),
                response_format=response_format,
            )
        except ScriptExhausted as exc:
            return 400, self._error(str(exc), "invalid_request_error"), call_number, None
        except Exception as exc:  # noqa: BLE001 - exception reply, bad reply, responder bug
            error = self._error(f"{type(exc).__name__}: {exc}", "server_error")
            return 500, error, call_number, None
        prompt = self._tokens.estimate(messages)
        completion = self._tokens.estimate([as_ai_message(message)])
        self._tokens.add(prompt, completion)
        message["_usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return 200, message, call_number, fault

    def _error(self, message: str, kind: str) -> dict[str, Any]:
        with self._lock:
            self._errors.append(message)
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _Server(ThreadingHTTPServer):
    """The HTTP server; a client that went away mid-answer (a killed process, a timeout) is
    the client's business, not an error of the server."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "accord-openai-compat/0.1"

    @property
    def owner(self) -> OpenAICompatServer:
        return self.server.owner  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send_json(self, status: int, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            model = {"id": self.owner.model, "object": "model", "created": 0, "owned_by": "accord"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._not_found()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._not_found()
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            error = {"message": f"invalid JSON body: {exc}", "type": "invalid_request_error"}
            self._send_json(400, {"error": error})
            return
        status, payload, call_number, fault = self.owner._complete(body)
        if fault is not None and fault.kind in (FaultKind.HANG, FaultKind.DROP,
                                                 FaultKind.MALFORMED):
            self._act_out(fault, stream=bool(body.get("stream")))
            return
        if status != 200:
            headers = {}
            if fault is not None and fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            self._send_json(status, payload, headers)
            return
        truncated = fault is not None and fault.kind is FaultKind.TRUNCATED
        usage = payload.pop("_usage")
        model = body.get("model") or self.owner.model
        if not body.get("stream"):
            answer = completion_body(payload, call_number=call_number, model=model, usage=usage)
            if truncated:
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self._close()
                return
            self._send_json(200, answer)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunks = stream_chunks(
            payload,
            call_number=call_number,
            model=model,
            usage=usage,
            include_usage=include_usage,
        )
        chunks = list(chunks)
        if truncated:  # the role and the first piece arrive, then the connection closes
            for chunk in chunks[:2]:
                self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self._close()
            return
        for chunk in chunks:
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _act_out(self, fault: ProviderFault, *, stream: bool = False) -> None:
        """A fault that sends no proper answer: hang, drop, or a body that is not JSON (for a
        streamed request: an event stream whose first event is not JSON)."""
        if fault.kind is FaultKind.HANG:
            self.owner._stopping.wait()
        elif fault.kind is FaultKind.MALFORMED and stream:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._write_chunk(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"rol\n\n')
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        elif fault.kind is FaultKind.MALFORMED:
            data = b'{"id": "chatcmpl-broken", "choices": [{"message": {"role": "assis'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            return
        self._close()

    def _close(self) -> None:
        """Close the connection at once, whatever was (not) sent."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _not_found(self) -> None:
        error = {"message": f"no route {self.command} {self.path}", "type": "not_found"}
        self._send_json(404, {"error": error})
