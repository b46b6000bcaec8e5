"""The ops team's policy and the decision it implies: send the draft, or hand the ticket over.

Precedence, first match wins:
1. the draft was declined by the drafter → escalate (there is nothing to send);
2. the ticket has an always-human tag → escalate;
3. the draft repeats an answer the bot already sent on the ticket → escalate (saying it
   again would not help);
4. threshold: of the rules whose tags are all on the ticket, the one naming the most tags
   (the most specific) sets it; equal specificity → the higher threshold (the safer one);
   no matching rule → the default `threshold`;
5. confidence ≥ threshold → auto-send; below → escalate.

The escalation group is `escalation_group_id`, or the helpdesk's own in its table
(`[intercom] escalation_group_id = <team id>`), so one policy serves both helpdesks.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from helpdesk_bot.domain import Confidence, Decision, Draft, Ticket
from helpdesk_bot.errors import ConfigError

ANSWERED_TAG = "ai_answered"
ESCALATED_TAG = "ai_escalated"
REPLY_STATUSES = ("open", "pending", "hold", "solved")
HELPDESKS = ("zendesk", "intercom")

EXAMPLE = """\
# helpdesk-bot policy: which drafts go straight to customers.
threshold = 70                 # confidence (0-100) needed to send a reply by itself
reply_status = "pending"       # ticket status after an auto-sent reply
escalation_group_id = 0        # helpdesk group for handed-over tickets (0: leave unchanged)
always_human_tags = ["legal", "security", "vip"]

[intercom]                     # per-helpdesk escalation target, if it differs
escalation_group_id = 0        # Intercom team for handed-over conversations

[[rules]]                      # the rule naming the most tags on a ticket wins
tags = ["billing"]
threshold = 85
"""


@dataclass(frozen=True)
class TagRule:
    tags: frozenset[str]
    threshold: int

    def describe(self) -> str:
        return f"rule for tags {' + '.join(sorted(self.tags))}"


@dataclass(frozen=True)
class Policy:
    threshold: int = 70
    reply_status: str = "pending"
    escalation_group_id: int | None = None
    always_human_tags: frozenset[str] = frozenset()
    rules: tuple[TagRule, ...] = field(default_factory=tuple)
    # (helpdesk, group id or None) pairs that override escalation_group_id for that helpdesk
    helpdesk_escalation_groups: tuple[tuple[str, int | None], ...] = ()

    def escalation_group_for(self, helpdesk: str) -> int | None:
        return dict(self.helpdesk_escalation_groups).get(helpdesk, self.escalation_group_id)

    def threshold_for(self, tags: frozenset[str]) -> tuple[int, str]:
        matching = [rule for rule in self.rules if rule.tags <= tags]
        if not matching:
            return self.threshold, "default threshold"
        best = max(matching, key=lambda rule: (len(rule.tags), rule.threshold))
        return best.threshold, best.describe()


def decide(ticket: Ticket, draft: Draft, confidence: Confidence, policy: Policy) -> Decision:
    """Decide what happens to a ticket; a pure function of its inputs."""
    threshold, rule = policy.threshold_for(ticket.tags)
    escalate = dict(action="escalate", threshold=threshold, rule=rule,
                    escalation_group_id=policy.escalation_group_for(ticket.helpdesk), tags=(ESCALATED_TAG,))
    if draft.declined:
        return Decision(**escalate, reasons=(f"no answer in the knowledge base: {draft.decline_reason}",))
    human_tags = sorted(ticket.tags & policy.always_human_tags)
    if human_tags:
        return Decision(**{**escalate, "rule": "always-human tags"},
                        reasons=(f"tagged {', '.join(human_tags)}: always handled by a human",))
    if repeats_an_earlier_answer(ticket, draft):
        return Decision(**{**escalate, "rule": "repeated answer"},
                        reasons=("the draft repeats an answer already sent on this ticket",))
    if confidence.score < threshold:
        weakest = sorted((c for c in confidence.components if c.weight), key=lambda c: c.value)[:2]
        reasons = (f"confidence {confidence.score} is below the {rule} ({threshold})",) + tuple(
            f"weak {c.name.replace('_', ' ')}: {c.detail}" for c in weakest if c.value < 0.7
        )
        return Decision(**escalate, reasons=reasons)
    return Decision(
        action="auto_send",
        threshold=threshold,
        rule=rule,
        reasons=(f"confidence {confidence.score} meets the {rule} ({threshold})",),
        status_after_reply=policy.reply_status,
        tags=(ANSWERED_TAG,),
    )


def repeats_an_earlier_answer(ticket: Ticket, draft: Draft) -> bool:
    """Whether every word of the draft, in order, is already in one of the bot's public replies."""
    wanted = _words(re.sub(r"\[\d+\]", " ", draft.text))
    return bool(wanted) and any(
        wanted in _words(m.text) for m in ticket.messages if m.author == "bot" and m.public
    )


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", text.lower())) + " "


# --- Loading and validating the TOML file -----------------------------------------------

_KEYS = {"threshold", "reply_status", "escalation_group_id", "always_human_tags", "rules", *HELPDESKS}


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return Policy()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"policy {path}: {exc}") from None
    return parse_policy(raw, source=str(path))


def parse_policy(raw: dict, source: str = "policy") -> Policy:
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
    threshold = _threshold(raw.get("threshold", 70), f"{source}: threshold")
    reply_status = raw.get("reply_status", "pending")
    if reply_status not in REPLY_STATUSES:
        raise ConfigError(f"{source}: reply_status must be one of {', '.join(REPLY_STATUSES)}, got {reply_status!r}")
    group = _group(raw.get("escalation_group_id", 0), f"{source}: escalation_group_id")
    helpdesk_groups = []
    for helpdesk in HELPDESKS:
        if helpdesk not in raw:
            continue
        table = raw[helpdesk]
        if not isinstance(table, dict) or set(table) - {"escalation_group_id"}:
            raise ConfigError(f"{source}: [{helpdesk}] holds only `escalation_group_id`")
        if "escalation_group_id" in table:
            helpdesk_group = _group(table["escalation_group_id"], f"{source}: {helpdesk}.escalation_group_id")
            helpdesk_groups.append((helpdesk, helpdesk_group or None))
    if not isinstance(raw.get("rules", []), list):
        raise ConfigError(f"{source}: rules must be a list of [[rules]] tables")
    rules = []
    for n, rule in enumerate(raw.get("rules", []), 1):
        where = f"{source}: rules[{n}]"
        if not isinstance(rule, dict) or set(rule) - {"tags", "threshold"}:
            raise ConfigError(f"{where}: a rule has exactly `tags` and `threshold`")
        rules.append(TagRule(tags=_tags(rule.get("tags"), f"{where}.tags", nonempty=True),
                             threshold=_threshold(rule.get("threshold"), f"{where}.threshold")))
    return Policy(
        threshold=threshold,
        reply_status=reply_status,
        escalation_group_id=group or None,
        always_human_tags=_tags(raw.get("always_human_tags", []), f"{source}: always_human_tags"),
        rules=tuple(rules),
        helpdesk_escalation_groups=tuple(helpdesk_groups),
    )


def _group(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where} must be a helpdesk group id (integer), got {value!r}")
    return value


def _threshold(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise ConfigError(f"{where} must be an integer from 0 to 100, got {value!r}")
    return value


def _tags(value, where: str, nonempty: bool = False) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise ConfigError(f"{where} must be a list of tag names, got {value!r}")
    if nonempty and not value:
        raise ConfigError(f"{where} must name at least one tag")
    return frozenset(t.strip().lower() for t in value)
