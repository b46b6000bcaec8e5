"""A local stand-in for an OpenAI-compatible server: `/v1/models` and `/v1/chat/completions`
in OpenAI's wire format (bodies, error bodies, `Retry-After`), answering after a fixed delay,
so the real `openai` client (and the product's OpenAI drafter) runs against it in benchmarks,
tests and the doctor's checks.

    python -m integrations.llm_standin --port 8766 [--delay 1.5] [--api-key KEY]

The reply follows the drafter's JSON schema: it answers like a careful model, with the first
sentence of source S1, cited, or declines when the prompt holds no sources. Tests replace
`responder` to make it answer otherwise, script a raw HTTP `reply`, or `inject` faults: error
statuses, slow answers, connection resets. Two responders come with it:

- `obeying(orders)`: a gullible model. When the prompt carries an order's trigger (the words a
  hostile ticket used), it writes what that ticket dictated, cited; an order whose trigger never
  reached it (a display name the prompt leaves out, say) cannot be obeyed. With no matching
  order it writes whatever follows "say", "write", "reply" or "tell me" in the ticket.
- `answering(text)`: a careful model that writes `text` and cites the source holding most of its
  words, with "{url}" replaced by that source's link.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "standin-1"
# Completion requests kept for tests to read: the last ones only, so that a stand-in left
# running for days (`python -m integrations.llm_standin`) does not grow without bound.
KEPT_REQUESTS = 10_000
_SOURCE = re.compile(r"^\[S1\][^\n]*\n([^\n]+)", re.MULTILINE)


@dataclass
class LLMFault:
    status: int | None = None  # answer this HTTP status with an OpenAI error body
    retry_after: float | None = None
    delay: float = 0.0  # sleep first: longer than the client's timeout is a timeout
    reset: bool = False  # drop the connection with a TCP reset


def answer_for(request: dict) -> dict:
    prompt = "\n".join(str(m.get("content", "")) for m in request["messages"] if m.get("role") == "user")
    match = _SOURCE.search(prompt)
    if not match:
        return {"can_answer": False, "answer": "", "citations": [], "reason": "no sources were given"}
    first = re.split(r"(?<=[.!?])\s", match.group(1).strip(), maxsplit=1)[0]
    return {"can_answer": True, "answer": f"{first} [S1]", "citations": ["S1"], "reason": ""}


_SOURCE_BLOCK = re.compile(r"^\[(S\d+)\][^\n]*\((\S*)\)\n(.*?)(?=^\[S\d+\]|\Z)", re.MULTILINE | re.DOTALL)
_TICKET = re.compile(r"<ticket>\n(.*?)\n</ticket>", re.DOTALL)
_DICTATED = re.compile(r"(?i)\b(?:say|write|reply|respond|answer|tell (?:me|them|the customer)|state|confirm)"
                       r"(?: (?:exactly|only|back|with|that|this(?: sentence)?|in your reply))*\s*[:,]?\s*"
                       r"[\"“'‘]?(?P<text>[^\"”’\n]{8,}?)[\"”’]?\s*$", re.MULTILINE)


def _prompt(request: dict) -> str:
    return "\n".join(str(m.get("content", "")) for m in request["messages"] if m.get("role") == "user")


def _answer(text: str, label: str = "S1") -> dict:
    return {"can_answer": True, "answer": f"{text} [{label}]", "citations": [label], "reason": ""}


def obeying(orders: dict[str, str] | None = None, otherwise=answer_for):
    """A responder that does what the ticket in the prompt tells it (see the module docstring)."""
    def respond(request: dict) -> dict:
        prompt = _prompt(request)
        for trigger, dictated in (orders or {}).items():
            if trigger in prompt:
                return _answer(dictated)
        ticket = _TICKET.search(prompt)
        found = _DICTATED.search(ticket.group(1)) if ticket else None
        return _answer(found.group("text").strip()) if found else otherwise(request)
    return respond


def answering(text: str):
    """A responder that writes `text` from the source that holds most of its words (see above)."""
    words = set(re.findall(r"\w+", text.lower()))

    def respond(request: dict) -> dict:
        blocks = _SOURCE_BLOCK.findall(_prompt(request))
        if not blocks:
            return answer_for(request)
        label, url, _ = max(blocks, key=lambda b: len(words & set(re.findall(r"\w+", b[2].lower()))))
        return _answer(text.replace("{url}", url), label)
    return respond


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects
    server: StandinServer

    def setup(self):
        super().setup()
        # Headers and body leave in two writes; with Nagle's algorithm the second waits for the
        # client's delayed ACK (~40 ms) on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if not self._authorised():
            return
        if self.path.rstrip("/") == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": self.server.model, "object": "model",
                                                                "created": 1700000000, "owned_by": "standin"}]})
        self._json(404, _error("not found", "invalid_request_error"))

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self._authorised():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, _error("not found", "invalid_request_error"))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._json(400, _error("body must be JSON with `messages`", "invalid_request_error"))
        server = self.server
        with server.lock:
            server.calls += 1
            server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "json": body})
            fault = server.faults.popleft() if server.faults else None
        if fault and self._fail(fault):
            return None
        time.sleep(server.delay)  # the model's own time
        if server.reply:
            status, headers, payload = server.reply
            return self._json(status, payload, headers)
        content = json.dumps(server.responder(body))
        self._json(200, {
            "id": f"chatcmpl-standin-{self.server.calls}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.server.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(raw) // 4, "completion_tokens": len(content) // 4,
                      "total_tokens": (len(raw) + len(content)) // 4},
        })

    def _authorised(self) -> bool:
        if self.server.api_key and self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            self._json(401, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
            return False
        return True

    def _fail(self, fault: LLMFault) -> bool:
        """Play `fault`; False when it was only a delay and the answer should follow."""
        time.sleep(fault.delay)
        if fault.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return True
        if fault.status:
            kinds = {429: ("rate_limit_exceeded", "Rate limit reached for requests"),
                     503: ("server_error", "The engine is currently overloaded, please try again later")}
            code, message = kinds.get(fault.status, ("server_error", "The server had an error while processing your request."))
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._json(fault.status, _error(message, code, code), headers)
            return True
        return False

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # one line per request would drown a benchmark's output
        pass


def _error(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay: float = 0.0, api_key: str | None = None,
                 model: str = MODEL, kept_requests: int = KEPT_REQUESTS):
        super().__init__((host, port), _Handler)
        self.delay, self.api_key, self.model = delay, api_key, model
        self.calls = 0
        self.lock = threading.Lock()
        # The latest completion requests, oldest first: path, headers (lower-case), json
        self.requests: deque[dict] = deque(maxlen=kept_requests)
        self.faults: deque[LLMFault] = deque()
        self.responder = answer_for  # request body -> the drafter's JSON answer
        self.reply: tuple[int, dict, dict] | None = None  # a scripted raw answer: status, headers, body

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"

    def start(self) -> StandinServer:
        threading.Thread(target=self.serve_forever, name="llm-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def inject(self, fault: LLMFault, times: int = 1) -> None:
        with self.lock:
            self.faults.extend([fault] * times)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.responder, self.reply = answer_for, None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m integrations.llm_standin", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each completion takes")
    parser.add_argument("--api-key", help="require this bearer token")
    args = parser.parse_args(argv)
    server = StandinServer(args.host, args.port, args.delay, args.api_key)
    print(f"LLM stand-in at {server.base_url} (delay {args.delay} s)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
