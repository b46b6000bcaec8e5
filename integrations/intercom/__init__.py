"""Intercom: webhook intake and the helpdesk client."""

from integrations.intercom.client import IntercomHelpdesk

__all__ = ["IntercomHelpdesk"]
