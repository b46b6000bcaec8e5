"""One driver per sandbox helpdesk, so a test can play the customer and the human agent the
same way on Zendesk and on Intercom, and read back what they would see."""

from __future__ import annotations

import requests

from helpdesk_bot.settings import Settings
from integrations.intercom import IntercomHelpdesk
from integrations.sandbox import BOT_AGENT_EMAIL, BOT_AGENT_ID, ESCALATION_GROUP_ID, HUMAN_AGENT_EMAIL, HUMAN_AGENT_ID
from integrations.sandbox.intercom import BOT_ADMIN_ID, HUMAN_ADMIN_ID, SUPPORT_TEAM_ID
from integrations.zendesk import ZendeskHelpdesk


class ZendeskDriver:
    name = "zendesk"
    escalation_group = ESCALATION_GROUP_ID
    human_id = str(HUMAN_AGENT_ID)
    post_path = r"/api/v2/tickets/\d+\.json$"  # PUT: every reply and note is one ticket update
    read_path = r"/api/v2/tickets/\d+\.json$"  # GET
    default_locale = "en-us"  # the sample help center's

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.agent = requests.Session()
        self.agent.auth = (f"{HUMAN_AGENT_EMAIL}/token", "sandbox")

    def client(self, monkeypatch=None) -> ZendeskHelpdesk:
        """The real client (zenpy) pointed at the sandbox, as the product points it (`api_origin`)."""
        return ZendeskHelpdesk("sandbox", email=BOT_AGENT_EMAIL, token="sandbox", api_origin=self.sandbox.url)

    def configured(self, env: dict) -> ZendeskHelpdesk:
        """The client as the product builds it from its settings (`env` adds to the sandbox's)."""
        return ZendeskHelpdesk.from_settings(Settings.from_env({"SANDBOX_URL": self.sandbox.url, **env}))

    # The customer and the human agent

    def start(self, subject: str, body: str, email: str, name: str, tags=()) -> str:
        return str(self.sandbox.create_ticket(subject, body, email, name, tags=list(tags)))

    def customer_says(self, ticket_id: str, text: str) -> None:
        self.sandbox.add_customer_reply(int(ticket_id), text)

    def agent_says(self, ticket_id: str, text: str) -> None:
        self._agent_update(ticket_id, {"comment": {"body": text, "public": True}})

    def assign_to_human(self, ticket_id: str) -> None:
        self._agent_update(ticket_id, {"assignee_id": HUMAN_AGENT_ID})

    def redeliver_follow_up(self, ticket_id: str) -> None:
        """Zendesk invokes the update webhook again for the same comment (a new invocation id)."""
        self.sandbox.fire_webhook(int(ticket_id), event="ticket.updated")

    def inject_throttle(self, seconds: int) -> None:
        self.sandbox.state.inject_fault("PUT", self.post_path, 429, retry_after=seconds)

    def inject_server_error(self) -> None:
        self.sandbox.state.inject_fault("GET", self.read_path, 503)

    # What each side sees

    def bot_messages(self, ticket_id: str) -> list[dict]:
        return [{"public": c["public"], "text": c["plain_body"], "html": c["html_body"]}
                for c in self.sandbox.comments(int(ticket_id)) if c["author_id"] == BOT_AGENT_ID]

    def customer_visible(self, ticket_id: str) -> list[str]:
        return [c["plain_body"] for c in self.sandbox.comments(int(ticket_id)) if c["public"]]

    def tags(self, ticket_id: str) -> set[str]:
        return set(self.sandbox.ticket(int(ticket_id))["tags"])

    def escalation_target(self, ticket_id: str):
        return self.sandbox.ticket(int(ticket_id))["group_id"]

    def status(self, ticket_id: str) -> str:
        return self.sandbox.ticket(int(ticket_id))["status"]

    def rate(self, ticket_id: str, good: bool, comment: str) -> None:
        self.sandbox.rate_ticket(int(ticket_id), "good" if good else "bad", comment)

    def _agent_update(self, ticket_id: str, fields: dict) -> None:
        response = self.agent.put(f"{self.sandbox.url}/api/v2/tickets/{ticket_id}.json", json={"ticket": fields},
                                  timeout=10)
        response.raise_for_status()


class IntercomDriver:
    name = "intercom"
    escalation_group = int(SUPPORT_TEAM_ID)
    human_id = HUMAN_ADMIN_ID
    post_path = r"^/conversations/\d+/reply$"
    read_path = r"^/conversations/\d+$"
    default_locale = "en"  # Intercom's code for the sample help center's en-us

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def client(self, monkeypatch=None) -> IntercomHelpdesk:
        return IntercomHelpdesk("sandbox-token", base_url=self.sandbox.url)

    def configured(self, env: dict) -> IntercomHelpdesk:
        """The client as the product builds it from its settings (`env` adds to the sandbox's)."""
        return IntercomHelpdesk.from_settings(Settings.from_env({"INTERCOM_SANDBOX_URL": self.sandbox.url, **env}))

    def start(self, subject: str, body: str, email: str, name: str, tags=()) -> str:
        conversation_id = self.sandbox.start_conversation(email, body, name, subject=subject)
        for tag in tags:  # as an inbox rule would, acting as a teammate
            tag_id = self.sandbox._call("POST", "/tags", {"name": tag})["id"]
            self.sandbox._call("POST", f"/conversations/{conversation_id}/tags", {"id": tag_id, "admin_id": HUMAN_ADMIN_ID})
        return conversation_id

    def customer_says(self, ticket_id: str, text: str) -> None:
        self.sandbox.customer_reply(ticket_id, text)

    def agent_says(self, ticket_id: str, text: str) -> None:
        self.sandbox.agent_reply(ticket_id, text)

    def assign_to_human(self, ticket_id: str) -> None:
        self.sandbox.assign_to_admin(ticket_id)

    def redeliver_follow_up(self, ticket_id: str) -> None:
        """Intercom notifies about the same reply again (a new notification id)."""
        self.sandbox.redeliver(ticket_id, "conversation.user.replied")

    def inject_throttle(self, seconds: int) -> None:
        self.sandbox.state.inject_fault("POST", self.post_path, 429, reset_after=seconds)

    def inject_server_error(self) -> None:
        self.sandbox.state.inject_fault("GET", self.read_path, 503)

    def bot_messages(self, ticket_id: str) -> list[dict]:
        from helpdesk_bot.text import html_to_text

        return [{"public": p["part_type"] == "comment", "text": html_to_text(p["body"]), "html": p["body"]}
                for p in self.sandbox.parts(ticket_id)
                if p["author"]["type"] == "admin" and p["author"]["id"] == BOT_ADMIN_ID and p["body"]]

    def customer_visible(self, ticket_id: str) -> list[str]:
        from helpdesk_bot.text import html_to_text

        conversation = self.sandbox.conversation(ticket_id)
        shown = [conversation["source"]["body"]] + [
            p["body"] for p in conversation["conversation_parts"]["conversation_parts"]
            if p["body"] and p["part_type"] in ("comment", "open", "close")]
        return [html_to_text(body) for body in shown]

    def tags(self, ticket_id: str) -> set[str]:
        return {t["name"] for t in self.sandbox.conversation(ticket_id)["tags"]["tags"]}

    def escalation_target(self, ticket_id: str):
        return self.sandbox.conversation(ticket_id)["team_assignee_id"]

    def status(self, ticket_id: str) -> str:
        return self.sandbox.conversation(ticket_id)["state"]

    def rate(self, ticket_id: str, good: bool, comment: str) -> None:
        self.sandbox.state.rate(ticket_id, 5 if good else 1, comment)


DRIVERS = {"zendesk": ZendeskDriver, "intercom": IntercomDriver}
