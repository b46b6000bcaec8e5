"""helpdesk-bot: answers support tickets from your knowledge, and hands the rest to humans."""

__version__ = "0.1.0"
