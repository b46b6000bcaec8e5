"""Build the product's parts from settings: the real service when configured, else embedded."""

from __future__ import annotations

from helpdesk_bot.calibration import Calibration
from helpdesk_bot.drafting import make_drafter
from helpdesk_bot.embedding import make_embedder, make_multilingual_embedder
from helpdesk_bot.impact import ImpactCheck
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.pipeline import Answerer, Pipeline
from helpdesk_bot.policy import PolicyFile
from helpdesk_bot.retrieval import Retriever
from helpdesk_bot.settings import Settings
from helpdesk_bot.vectorstore import KnowledgeStore
from integrations.intercom import IntercomHelpdesk
from integrations.zendesk import ZendeskHelpdesk

def init_sentry(settings: Settings) -> None:
    """Redact personal data and secrets from every log record, and from Sentry's reports when
    SENTRY_DSN is set (the web app and the workers both start here)."""
    from helpdesk_bot.redaction import redact_log_records
    from helpdesk_bot.scrubbing import scrub_sentry_event

    redact_log_records()
    if not settings.sentry_dsn:
        return
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(dsn=settings.sentry_dsn, send_default_pii=False,
                    integrations=[FlaskIntegration(), CeleryIntegration()],
                    before_send=scrub_sentry_event, before_breadcrumb=scrub_sentry_event)


def open_ledger(settings: Settings) -> Ledger:
    """The ledger, its schema migrated to the newest revision."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(settings.database_url, price_per_mtok=settings.llm_price_per_mtok)
    ledger.migrate()
    return ledger


def open_store(settings: Settings, embedder=None, writable: bool = False, rebuild: bool = False) -> KnowledgeStore:
    """The knowledge index; `writable` for indexing (published on close), `rebuild` to start empty."""
    embedder = embedder or make_embedder(settings)
    return KnowledgeStore.open(settings, embedder.dimension, writable=writable, rebuild=rebuild,
                               multilingual=make_multilingual_embedder(settings))


HELPDESKS = {"zendesk": ZendeskHelpdesk, "intercom": IntercomHelpdesk}


def make_helpdesk(settings: Settings, name: str | None = None):
    """One helpdesk by name; by default the one whose articles are the knowledge."""
    return HELPDESKS[name or settings.knowledge_helpdesk].from_settings(settings)


def make_helpdesks(settings: Settings) -> dict:
    """Every helpdesk, each the real one when configured, else its sandbox."""
    return {name: make_helpdesk(settings, name) for name in HELPDESKS}


def open_policy(settings: Settings) -> PolicyFile:
    """HELPDESK_POLICY, which must exist, else policy.toml in the data folder or the built-in defaults.

    Re-read when the file changes: the dashboard's editor takes effect without a restart.
    """
    return PolicyFile(settings.policy_file, required=settings.policy_path is not None)


def build_answerer(settings: Settings) -> Answerer:
    embedder = make_embedder(settings)
    return Answerer(
        retriever=Retriever(open_store(settings, embedder), embedder, locales=settings.knowledge_locales,
                            default_language=settings.default_language),
        drafter=make_drafter(settings),
        policy=open_policy(settings),
        calibration=Calibration.load(settings.calibration_path),
        default_language=settings.default_language,
    )


def build_pipeline(settings: Settings) -> Pipeline:
    # A claim older than two helpdesk timeouts belongs to a worker that died mid-call.
    return Pipeline(answerer=build_answerer(settings), helpdesks=make_helpdesks(settings), ledger=open_ledger(settings),
                    action_lease_seconds=2 * settings.helpdesk_timeout, default_language=settings.default_language)


def build_impact_check(settings: Settings, ledger: Ledger, helpdesks: dict | None = None) -> ImpactCheck:
    """The check, after every re-index, of the answers that cited a changed or removed article."""
    return ImpactCheck(ledger=ledger, helpdesks=helpdesks or make_helpdesks(settings),
                       policy=PolicyFile(settings.policy_file, required=settings.policy_path is not None),
                       days=settings.impact_days)
