"""Zendesk Support: webhook intake and the helpdesk client."""

from integrations.zendesk.client import ZendeskHelpdesk

__all__ = ["ZendeskHelpdesk"]
