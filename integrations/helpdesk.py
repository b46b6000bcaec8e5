"""The one interface every helpdesk implements; the pipeline sees nothing else of a vendor."""

from __future__ import annotations

from typing import Protocol

from helpdesk_bot.domain import Ticket, TicketHistory
from helpdesk_bot.knowledge import Article


class Helpdesk(Protocol):
    name: str

    def fetch_ticket(self, ticket_id: str) -> Ticket:
        """The ticket with its public conversation and internal notes."""

    def post_reply(self, ticket_id: str, html: str, status: str, tags: tuple[str, ...]) -> dict:
        """Send a public reply to the customer, set the status, add tags."""

    def post_note(self, ticket_id: str, html: str, group_id: int | None, tags: tuple[str, ...]) -> dict:
        """Add an internal note for agents, route the ticket to a human group, add tags."""

    def has_bot_comment(self, ticket_id: str, html: str) -> bool:
        """Whether the bot already posted this body on the ticket (to reconcile after a crash)."""

    def articles(self) -> list[Article]:
        """The published knowledge articles, for the nightly re-index."""

    def ticket_history(self, ticket_id: str) -> TicketHistory:
        """Status, tags, timed comments and satisfaction rating: what the outcomes job needs."""
