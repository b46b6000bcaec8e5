"""`helpdesk-bot doctor` against the real local services: Redis, the database, the embedded
index, the sandbox Zendesk and the LLM stand-in; and what it says when each is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpdesk_bot.knowledge import Article, sync_index
from helpdesk_bot.services import open_store
from helpdesk_bot.settings import Settings
from integrations.llm_standin import StandinServer
from integrations.sandbox import SandboxHelpdesk
from harness import free_port

LLM_KEY = "sk-doctor-test"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    """PostgreSQL when TEST_DATABASE_URL is set (in a schema of its own: the server is shared), else SQLite."""
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        yield f"sqlite:///{tmp_path_factory.mktemp('doctor-db') / 'helpdesk.db'}"
        return
    import uuid

    import sqlalchemy as sa

    schema = f"doctor_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    with admin.begin() as db:
        db.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    with admin.begin() as db:
        db.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(scope="module")
def services(tmp_path_factory, redis_url, embedder, database_url):
    data_dir = tmp_path_factory.mktemp("doctor")
    sandbox = SandboxHelpdesk().start()
    llm = StandinServer(api_key=LLM_KEY).start()
    policy = data_dir / "policy.toml"
    policy.write_text('threshold = 80\nalways_human_tags = ["legal"]\n[[rules]]\ntags = ["billing"]\nthreshold = 90\n')
    env = {
        **{k: v for k, v in os.environ.items()
           if not k.startswith(("ZENDESK_", "INTERCOM_", "OPENAI_", "QDRANT_", "DATABASE_URL", "REDIS_URL", "SANDBOX_"))},
        "HELPDESK_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SANDBOX_URL": sandbox.url,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": LLM_KEY,
        "OPENAI_MODEL": "standin-1",
        "HELPDESK_POLICY": str(policy),
    }
    settings = Settings.from_env(env)
    from helpdesk_bot.services import open_ledger

    open_ledger(settings).dispose()  # the tables exist, as after the first start
    store = open_store(settings, embedder, writable=True)
    sync_index(store, embedder, [Article("1", "Resetting your password", "<p>Open Settings and choose Reset.</p>")])
    store.close()
    yield env
    llm.stop()
    sandbox.stop()


def doctor(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpdesk_bot.ops.cli", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def beat_running(services):
    """The beat lock held as a running beat holds it (workers/beat_lock.py)."""
    from workers.beat_lock import LeaderLock
    from workers.broker import redis_client

    lock = LeaderLock(redis_client(services["REDIS_URL"]), ttl=60, holder="beat-host:4242:test")
    assert lock.acquire_or_renew()
    yield lock
    lock.release()


def test_every_check_passes_against_working_services(services, beat_running):
    result = doctor(services, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert {name: c["status"] for name, c in checks.items()} == {
        "configuration": "ok", "policy": "ok", "redis": "ok", "beat": "ok", "database": "ok", "qdrant": "ok",
        "embedding model": "ok", "helpdesk": "ok", "intercom": "ok", "llm": "ok",
    }, checks
    assert checks["beat"]["detail"] == "beat running (beat-host:4242:test)"
    assert "threshold 80, 1 rule(s), always-human tags legal" in checks["policy"]["detail"]
    assert "Redis " in checks["redis"]["detail"]
    assert "ledger tables present" in checks["database"]["detail"]
    assert "holds 1 chunks" in checks["qdrant"]["detail"]
    assert "signed in as" in checks["helpdesk"]["detail"] and "(id " in checks["helpdesk"]["detail"]
    assert "model standin-1 listed" in checks["llm"]["detail"]


def test_a_wrong_redis_port_fails_with_what_to_do(services):
    port = free_port()  # nothing listens there
    result = doctor({**services, "REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    redis_line = next(line for line in lines if line.startswith("FAIL  redis"))
    assert f"cannot connect to Redis at redis://127.0.0.1:{port}/0" in redis_line
    assert "Connection refused" in redis_line
    assert lines[lines.index(redis_line) + 1].strip() == (
        "fix: start Redis there, or set REDIS_URL to a reachable server (e.g. redis://redis:6379/0)")
    beat_line = next(line for line in lines if line.startswith("WARN  beat"))
    assert "cannot tell whether beat runs: Redis unreachable" in beat_line
    assert lines[-1] == "1 failed, 1 warning(s), 8 ok"


def test_no_running_beat_is_a_warning_with_what_to_do(services):
    result = doctor(services, "--json")
    assert result.returncode == 0  # warnings do not fail the doctor
    beat = {c["name"]: c for c in json.loads(result.stdout)}["beat"]
    assert beat["status"] == "warn" and beat["detail"].startswith("no beat is running")
    assert "helpdesk-bot beat" in beat["fix"]


def test_each_broken_service_is_named_with_its_fix(services, tmp_path):
    bad_policy = tmp_path / "policy.toml"
    bad_policy.write_text("threshold = 170\n")
    env = {**services, "OPENAI_API_KEY": "sk-wrong", "SANDBOX_URL": f"http://127.0.0.1:{free_port()}",
           "HELPDESK_POLICY": str(bad_policy), "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/test",
           "HELPDESK_DATA_DIR": str(tmp_path / "empty")}
    result = doctor(env, "--json")
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    failed = {name for name, c in checks.items() if c["status"] == "fail"}
    assert failed == {"policy", "database", "qdrant", "helpdesk", "llm"}, checks
    assert "threshold" in checks["policy"]["detail"] and "policy file" in checks["policy"]["fix"]
    assert checks["database"]["detail"].startswith("cannot use the database postgresql+psycopg://postgres@127.0.0.1:")
    assert "DATABASE_URL" in checks["database"]["fix"]
    assert "is empty or missing" in checks["qdrant"]["detail"] and "helpdesk-bot index" in checks["qdrant"]["fix"]
    assert checks["helpdesk"]["detail"].startswith("cannot reach sandbox helpdesk")
    assert "rejected the API key" in checks["llm"]["detail"] and "OPENAI_API_KEY" in checks["llm"]["fix"]


def test_a_configuration_error_stops_the_checks(services):
    result = doctor({**services, "HELPDESK_MAX_ATTEMPTS": "many"})
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "FAIL  configuration  HELPDESK_MAX_ATTEMPTS must be an integer, got 'many'"
