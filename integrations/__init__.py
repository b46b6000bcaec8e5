"""Helpdesk integrations: each vendor's wire format ends here."""
