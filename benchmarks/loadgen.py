"""HTTP load from a second process over loopback: `wrk` for peak throughput, and an open-loop
generator for latency at a fixed rate.

The fixed-rate generator measures each request from the moment it was *due*, not from when a
connection became free, so a stalled server shows up in the tail instead of slowing the load
down (the "coordinated omission" that closed-loop tools suffer from).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from integrations.zendesk.webhook import INVOCATION_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature


@dataclass(frozen=True)
class SignedWebhook:
    """A Zendesk trigger delivery; each request gets its own invocation id, so none is a duplicate.

    The signature covers the timestamp and the body only, so one signature serves every request.
    """

    secret: str
    body: bytes = b'{"ticket_id": "35436"}'

    def headers(self) -> dict[str, str]:
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self.secret, timestamp, self.body),
            TIMESTAMP_HEADER: timestamp,
        }


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


_WRK_SCRIPT = """
local counter = 0
local thread_id = 0
local prefix = "run"
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "run"
  wrk.method = "POST"
  wrk.body = BODY
  HEADERS
end

function request()
  counter = counter + 1
  wrk.headers["INVOCATION"] = prefix .. "-" .. thread_id .. "-" .. counter
  return wrk.format()
end

function done(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "errors_status": %d, '
    .. '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_timeout": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk(url: str, webhook: SignedWebhook, seconds: float, connections: int, threads: int = 1) -> dict:
    """Peak throughput with wrk (closed loop); returns requests/s and its error counts."""
    headers = "\n  ".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in webhook.headers().items())
    script = (_WRK_SCRIPT.replace("BODY", _lua_string(webhook.body.decode())).replace("HEADERS", headers)
              .replace("INVOCATION", INVOCATION_HEADER))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "--timeout", "5s", "-s", f.name,
             url, "--", uuid.uuid4().hex[:12]],
            capture_output=True, text=True, timeout=seconds + 30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
        out = out.stdout
    finally:
        Path(f.name).unlink()
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    result = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(v for k, v in result.items() if k.startswith("errors_"))
    result["ok"] = result["requests"] - errors
    # Only 2xx answers count: a 429 or 503 is quick to send and says nothing about intake.
    result["rps"] = result["ok"] / (result["duration_us"] / 1e6)
    return result


async def _request(reader, writer, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


def _raw_request(host: str, port: int, path: str, webhook: SignedWebhook, headers: dict[str, str], n: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(webhook.body)}",
             f"{INVOCATION_HEADER}: {headers['_prefix']}-{n}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if not k.startswith("_")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + webhook.body


async def _fixed_rate(host: str, port: int, path: str, webhook: SignedWebhook, rate: float, seconds: float,
                      max_connections: int) -> dict:
    headers = {**webhook.headers(), "_prefix": uuid.uuid4().hex[:12]}
    idle: list[tuple] = []
    opened = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    limit = asyncio.Semaphore(max_connections)

    async def one(n: int, due: float) -> None:
        nonlocal opened, errors
        async with limit:
            reused = bool(idle)
            for attempt in range(2):  # a kept-alive connection the server closed meanwhile: once more, fresh
                if reused and attempt == 0:
                    reader, writer = idle.pop()
                else:
                    reader, writer = await asyncio.open_connection(host, port)
                    opened += 1
                try:
                    status = await _request(reader, writer, _raw_request(host, port, path, webhook, headers, n))
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    writer.close()
                    if not reused or attempt == 1:
                        errors += 1
                        return
            latencies.append((time.perf_counter() - due) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            idle.append((reader, writer))

    start = time.perf_counter() + 0.05
    total = int(rate * seconds)
    tasks = []
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(n, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    return {"sent": total, "achieved_rps": round(total / elapsed, 1), "latencies_ms": latencies,
            "statuses": statuses, "errors": errors, "connections": opened}


def fixed_rate(url: str, webhook: SignedWebhook, rate: float, seconds: float, max_connections: int = 64) -> dict:
    """Open-loop load at `rate` requests/s; latency measured from each request's due time."""
    rest = url.split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    host, port = netloc.split(":")
    return asyncio.run(_fixed_rate(host, int(port), "/" + path, webhook, rate, seconds, max_connections))


async def _closed_loop(host, port, path, webhook, seconds, connections) -> dict:
    headers = {**webhook.headers(), "_prefix": uuid.uuid4().hex[:12]}
    counter = 0
    ok = 0
    deadline = time.perf_counter() + seconds

    async def loop():
        nonlocal counter, ok
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < deadline:
            counter += 1
            status = await _request(reader, writer, _raw_request(host, port, path, webhook, headers, counter))
            ok += 200 <= status < 300
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return {"requests": counter, "ok": ok, "rps": ok / elapsed}


def closed_loop(url: str, webhook: SignedWebhook, seconds: float, connections: int) -> dict:
    """Peak throughput without wrk: slower, so it understates the server when it is the bottleneck."""
    rest = url.split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    host, port = netloc.split(":")
    return asyncio.run(_closed_loop(host, int(port), "/" + path, webhook, seconds, connections))
