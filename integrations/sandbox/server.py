"""SandboxHelpdesk: runs the sandbox Zendesk on a local port and plays the customer side."""

from __future__ import annotations

import requests

from .constants import BOT_AGENT_EMAIL, HUMAN_AGENT_ID
from .serving import ServedInThread
from .helpcenter import HelpCenterSource
from .state import SandboxState
from .zendesk import create_app


class SandboxHelpdesk(ServedInThread):
    def __init__(self, help_center: HelpCenterSource = None, webhook_url: str | None = None,
                 webhook_secret: str | None = None, webhook_style: str = "trigger",
                 webhook_on_update: bool = False):
        self.state = SandboxState(help_center)
        self.state.webhooks.configure(webhook_url, webhook_secret, webhook_style, webhook_on_update)
        self.app = create_app(self.state)
        self.url = ""
        self.netloc = ""
        # The helpers below act through the HTTP API like any client, as the bot agent.
        self._session = requests.Session()
        self._session.auth = (f"{BOT_AGENT_EMAIL}/token", "sandbox")

    # Lifecycle

    thread_name = "sandbox-helpdesk"

    def _started(self) -> None:
        self.state.webhooks.netloc = self.netloc  # webhooks name the sandbox's host in their URLs

    # Webhooks

    def configure_webhook(self, url: str, secret: str, style: str = "trigger",
                          on_update: bool | None = None) -> None:
        """Point webhooks at the app, e.g. once its port is known."""
        self.state.webhooks.configure(url, secret, style, on_update)

    def fire_webhook(self, ticket_id: int, style: str | None = None, event: str = "ticket.created") -> str:
        """Deliver again for an existing ticket (a duplicate or follow-up); returns the invocation id."""
        return self.state.fire_webhook(ticket_id, style, event)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until every webhook delivery (with its retries) has finished."""
        return self.state.webhooks.wait_idle(timeout)

    # The customer's side, through the HTTP API

    def create_ticket(self, subject: str, body: str, requester_email: str, requester_name: str | None = None,
                      tags=(), channel: str = "web") -> int:
        ticket = {
            "subject": subject,
            "comment": {"body": body},
            "requester": {"name": requester_name or requester_email.split("@")[0], "email": requester_email},
            "tags": list(tags),
            "via": {"channel": channel},
        }
        return self._call("POST", "/tickets.json", {"ticket": ticket})["ticket"]["id"]

    def add_customer_reply(self, ticket_id: int, body: str) -> None:
        """A public comment authored by the ticket's requester."""
        requester_id = self.ticket(ticket_id)["requester_id"]
        comment = {"body": body, "public": True, "author_id": requester_id}
        self._call("PUT", f"/tickets/{ticket_id}.json", {"ticket": {"comment": comment}})

    def add_agent_reply(self, ticket_id: int, body: str, public: bool = True, status: str | None = None) -> None:
        """A comment by the human agent (HUMAN_AGENT_ID), as when an agent answers a handed-over ticket."""
        fields = {"comment": {"body": body, "public": public, "author_id": HUMAN_AGENT_ID}}
        if status:
            fields["status"] = status
        self._call("PUT", f"/tickets/{ticket_id}.json", {"ticket": fields})

    def add_tags(self, ticket_id: int, tags: list[str]) -> None:
        """Add tags, as an agent does with ai_draft_good or ai_draft_bad."""
        self._call("PUT", f"/tickets/{ticket_id}/tags.json", {"tags": list(tags)})

    def rate_ticket(self, ticket_id: int, score: str, comment: str = "") -> None:
        """The requester answers the satisfaction survey."""
        requester = self.state.user(self.ticket(ticket_id)["requester_id"])
        response = requests.post(f"{self.url}/api/v2/tickets/{ticket_id}/satisfaction_rating.json",
                                 json={"satisfaction_rating": {"score": score, "comment": comment}},
                                 auth=(f"{requester['email']}/token", "sandbox"), timeout=10)
        response.raise_for_status()

    def ticket(self, ticket_id: int) -> dict:
        return self._call("GET", f"/tickets/{ticket_id}.json")["ticket"]

    def comments(self, ticket_id: int) -> list[dict]:
        """All comments, oldest first, following cursor pages."""
        page = self._call("GET", f"/tickets/{ticket_id}/comments.json?page[size]=100")
        comments = list(page["comments"])
        while page["meta"]["has_more"]:
            page = self._get_url(page["links"]["next"])
            comments += page["comments"]
        return comments

    def _call(self, method: str, path: str, json_body: dict | None = None) -> dict:
        if not self.url:
            raise RuntimeError("the sandbox is not started")
        response = self._session.request(method, f"{self.url}/api/v2{path}", json=json_body, timeout=10)
        response.raise_for_status()
        return response.json()

    def _get_url(self, url: str) -> dict:
        response = self._session.get(url, timeout=10)
        response.raise_for_status()
        return response.json()
