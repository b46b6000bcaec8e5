"""A local stand-in for Zendesk: the REST API subset helpdesk-bot uses, in Zendesk's
shapes, so the real zenpy client runs against it in tests and the demo.

Point zenpy at it with ZENPY_FORCE_SCHEME=http and ZENPY_FORCE_NETLOC=<sandbox.netloc>.
"""

from .constants import (
    ACCOUNT_ID, BILLING_GROUP_ID, BOT_AGENT_EMAIL, BOT_AGENT_ID, BOT_AGENT_NAME, BRAND_ID,
    ESCALATION_GROUP_ID, HUMAN_AGENT_EMAIL, HUMAN_AGENT_ID, HUMAN_AGENT_NAME, SUBDOMAIN, WEBHOOK_ID,
)
from .server import SandboxHelpdesk
from .state import RequestRecord, SandboxState
from .webhooks import WebhookAttempt, sign_zendesk_webhook
from .zendesk import create_app

__all__ = [
    "ACCOUNT_ID", "BILLING_GROUP_ID", "BOT_AGENT_EMAIL", "BOT_AGENT_ID", "BOT_AGENT_NAME", "BRAND_ID",
    "ESCALATION_GROUP_ID", "HUMAN_AGENT_EMAIL", "HUMAN_AGENT_ID", "HUMAN_AGENT_NAME", "SUBDOMAIN",
    "WEBHOOK_ID", "RequestRecord", "SandboxHelpdesk", "SandboxState", "WebhookAttempt", "create_app",
    "sign_zendesk_webhook",
]
