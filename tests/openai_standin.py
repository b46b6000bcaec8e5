"""A local stand-in for OpenAI's `POST /v1/chat/completions`, with fault injection.

It speaks the real wire format (request and response bodies, error bodies, `Retry-After`), so
the product's OpenAIDrafter runs the real `openai` client against it via OPENAI_BASE_URL. By
default it answers like a careful model: the first sentences of source [S1], cited. Tests
replace `responder` to make it answer otherwise, e.g. obey whatever a ticket tells it to do.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class LLMFault:
    status: int | None = None  # answer this HTTP status with an OpenAI error body
    retry_after: float | None = None
    delay: float = 0.0  # sleep first: longer than the client's timeout is a timeout
    reset: bool = False  # drop the connection with a TCP reset


def grounded_answer(request: dict) -> dict:
    """What a well-behaved model answers: the first two sentences of [S1], cited."""
    user = request["messages"][-1]["content"]
    match = re.search(r"\[S1\][^\n]*\n(.+?)(?:\n\n\[S2\]|\n\nTicket from)", user, re.S)
    if not match:
        return {"can_answer": False, "answer": "", "citations": [], "reason": "no sources"}
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(match.group(1).split()))
    return {"can_answer": True, "answer": " ".join(sentences[:2]) + " [S1]", "citations": ["S1"], "reason": ""}


class OpenAIStandIn:
    def __init__(self):
        self.requests: list[dict] = []
        self.faults: deque[LLMFault] = deque()
        self.responder = grounded_answer
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"Unknown path {self.path}",
                                                      "type": "invalid_request_error", "code": "unknown_url"}})
                with standin._lock:
                    standin.requests.append(body)
                    fault = standin.faults.popleft() if standin.faults else None
                if fault:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.reset:
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                        self.close_connection = True
                        return None
                    if fault.status:
                        return self._error(fault)
                content = json.dumps(standin.responder(body))
                return self._send(200, {
                    "id": f"chatcmpl-{len(standin.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "gpt-4o-mini"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                                 "logprobs": None, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": len(json.dumps(body)) // 4, "completion_tokens": len(content) // 4,
                              "total_tokens": (len(json.dumps(body)) + len(content)) // 4},
                })

            def _error(self, fault: LLMFault):
                kinds = {429: ("rate_limit_exceeded", "Rate limit reached for requests"),
                         500: ("server_error", "The server had an error while processing your request."),
                         503: ("server_error", "The engine is currently overloaded, please try again later")}
                code, message = kinds.get(fault.status, ("server_error", "error"))
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return self._send(fault.status, {"error": {"message": message, "type": code, "param": None,
                                                           "code": code}}, headers)

            def _send(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def start(self) -> OpenAIStandIn:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(self, fault: LLMFault, times: int = 1) -> None:
        with self._lock:
            self.faults.extend([fault] * times)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.responder = grounded_answer
