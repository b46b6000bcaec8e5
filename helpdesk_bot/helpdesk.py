"""The one interface every helpdesk implements; the pipeline sees nothing else of a vendor.

Implementations: Zendesk (integrations/zendesk) and Intercom (integrations/intercom), where a
ticket is a conversation. tests/test_helpdesk_contract.py runs the same assertions on both.
Failures are the product's own: Throttled (429, with the wait), TransientError, PermanentError.

What only some helpdesks can do is a protocol of its own, checked with `isinstance`:
`HelpCenterFeed` (the articles changed since a time), `PastTicketsFeed` (solved tickets with
the agent's answer, to index as knowledge) and `SolvedTicketsFeed` (the same, for the backtest).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from helpdesk_bot.domain import Article, HelpCenterChanges, PastTickets, Ticket, TicketHistory


@runtime_checkable
class Helpdesk(Protocol):
    name: str

    def fetch_ticket(self, ticket_id: str, requester: bool = True) -> Ticket:
        """The ticket with its public conversation and internal notes, oldest first.

        `requester=False` may leave out the requester's name and locale, which only drafting
        needs: one API call fewer on Zendesk, for a look at who has the ticket now.

        Every message carries its helpdesk id and its author: the customer, the bot (its own
        agent or admin), a human agent, or the helpdesk's automation ("system").
        `human_assignee` is set when a human agent, not the bot, is assigned.
        """

    def post_reply(self, ticket_id: str, html: str, status: str, tags: tuple[str, ...]) -> dict:
        """Send a public reply to the customer, set the status, add tags.

        Raises Throttled only if nothing was posted, so the caller may simply try again.
        """

    def post_note(self, ticket_id: str, html: str, group_id: int | None, tags: tuple[str, ...]) -> dict:
        """Add an internal note for agents, route the ticket to a human group, add tags."""

    def has_bot_comment(self, ticket_id: str, html: str) -> bool:
        """Whether the bot already posted this body on the ticket (to reconcile after a crash)."""

    def articles(self) -> list[Article]:
        """The published knowledge articles, for the nightly re-index."""

    def ticket_history(self, ticket_id: str) -> TicketHistory:
        """Status, tags, timed comments and satisfaction rating: what the outcomes job needs."""


@runtime_checkable
class HelpCenterFeed(Protocol):
    """A help center with an incremental export: only what changed is read each night."""

    def article_changes(self, start_time: int) -> HelpCenterChanges:
        """The articles published or changed since `start_time`, and the ids of all published ones."""


@runtime_checkable
class PastTicketsFeed(Protocol):
    """Solved tickets whose agent answers can be indexed as knowledge."""

    def past_resolutions(self, start_time: int) -> PastTickets:
        """Tickets solved since `start_time`, each with the customer's question and the agent's answer."""


@runtime_checkable
class SolvedTicketsFeed(Protocol):
    """Solved tickets a human answered, to replay in the backtest (Zendesk and Intercom both)."""

    def solved_tickets(self, since: int, limit: int) -> list[tuple[Ticket, str]]:
        """Up to `limit` tickets solved since `since`: the ticket as the customer asked it (up to the
        first agent reply), and the agent's last public answer."""
