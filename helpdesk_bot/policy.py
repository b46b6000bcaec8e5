"""The ops team's policy and the decision it implies: send the draft, or hand the ticket over.

Precedence, first match wins:
1. the kill switch is on → escalate (nothing is sent automatically);
2. the draft was declined by the drafter → escalate (there is nothing to send);
3. the ticket has an always-human tag → escalate;
4. the ticket carries a risk signal (refund, disputed charge, legal, account takeover,
   cancellation, angry or urgent tone, ...: risk.py) → escalate, whatever the confidence and
   the threshold, unless the rule that applies to the ticket names that signal in `allow_risks`;
5. the draft mostly repeats an answer the bot already sent on the ticket → escalate (saying
   it again would not help);
6. threshold: of the rules whose conditions all hold for the ticket (every tag on it, its
   brand among `brands`, its channel among `channels`), the most specific sets it; a rule's
   specificity is its number of tags, plus one for a brand condition and one for a channel
   condition; equal specificity → the higher threshold (the safer one), then the first in
   the file; no matching rule → the default `threshold`;
7. confidence < threshold → escalate;
8. the ticket is outside the rollout share → escalate (the reply would have been sent);
9. shadow mode (for the whole policy, or on the rule that set the threshold) → escalate with
   the draft in the note, recorded as what would have been sent;
10. otherwise → auto-send.

The rollout share is deterministic: a ticket's bucket comes from a hash of its helpdesk and
id, so 10% is always the same tickets, and raising the share only adds tickets.

Handed-over tickets go to `escalation_group_id`, or to the helpdesk's own in its table
(`[intercom] escalation_group_id = <team id>`), so one policy serves both helpdesks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from helpdesk_bot.domain import ANSWERED_TAG, ESCALATED_TAG, SHADOW_TAG, Confidence, Decision, Draft, Ticket
from helpdesk_bot.errors import ConfigError
from helpdesk_bot.risk import SIGNAL_NAMES, risk_signals

log = logging.getLogger(__name__)

REPLY_STATUSES = ("open", "pending", "hold", "solved")
ROLLOUT_BUCKETS = 10_000  # the share is applied in steps of 0.01%
HELPDESKS = ("zendesk", "intercom")  # each may have its own [table] in the policy file

EXAMPLE = """\
# helpdesk-bot policy: which drafts go straight to customers.
threshold = 70                 # confidence (0-100) needed to send a reply by itself
reply_status = "pending"       # ticket status after an auto-sent reply
escalation_group_id = 0        # helpdesk group for handed-over tickets (0: leave unchanged)
always_human_tags = ["legal", "security", "vip"]
rollout = 100                  # percent of tickets the bot may answer by itself
shadow = false                 # true: never send; post notes and record what would have been sent
kill_switch = false            # true: nothing is sent automatically, everything goes to humans
article_change_notes = true    # a note on open tickets whose answer a changed article no longer supports
link_domains = []              # the company's domains (and their subdomains) a reply may link to,
                               # besides its cited sources: ["orbitask.com"]

[intercom]                     # per helpdesk, if its escalation target differs
escalation_group_id = 0        # Intercom team for handed-over conversations

[[rules]]                      # the most specific matching rule wins
tags = ["billing"]
threshold = 85
# allow_risks = ["refund"]     # let the bot answer refund questions on billing tickets
"""


@dataclass(frozen=True)
class TagRule:
    """A threshold for the tickets that carry all `tags` (and, if given, a brand and a channel)."""

    tags: frozenset[str]
    threshold: int
    brands: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    shadow: bool = False
    allow_risks: frozenset[str] = frozenset()  # risk signals (risk.py) the bot may answer on these tickets

    @property
    def specificity(self) -> int:
        return len(self.tags) + bool(self.brands) + bool(self.channels)

    def matches(self, ticket: Ticket) -> bool:
        return (self.tags <= ticket.tags
                and (not self.brands or (ticket.brand_id or "") in self.brands)
                and (not self.channels or (ticket.channel or "").lower() in self.channels))

    def describe(self) -> str:
        parts = []
        if self.tags:
            parts.append(f"tags {' + '.join(sorted(self.tags))}")
        if self.brands:
            parts.append(f"brand {' or '.join(sorted(self.brands))}")
        if self.channels:
            parts.append(f"channel {' or '.join(sorted(self.channels))}")
        return f"rule for {', '.join(parts)}"


Rule = TagRule


@dataclass(frozen=True)
class Policy:
    threshold: int = 70
    reply_status: str = "pending"
    escalation_group_id: int | None = None
    always_human_tags: frozenset[str] = frozenset()
    rules: tuple[TagRule, ...] = field(default_factory=tuple)
    rollout: float = 100.0  # percent of tickets the bot may answer by itself
    shadow: bool = False
    kill_switch: bool = False
    # A note for the agent on an open ticket whose answer an article change no longer supports.
    article_change_notes: bool = True
    # (helpdesk, group id or None) pairs that override escalation_group_id for that helpdesk
    helpdesk_escalation_groups: tuple[tuple[str, int | None], ...] = ()
    # Domains a reply may link to besides its cited sources: the company's own, subdomains included.
    link_domains: tuple[str, ...] = ()

    def escalation_group_for(self, helpdesk: str) -> int | None:
        return dict(self.helpdesk_escalation_groups).get(helpdesk, self.escalation_group_id)

    def current(self) -> Policy:
        """The policy in force: itself (a `PolicyFile` re-reads its file instead)."""
        return self

    def rule_for(self, ticket: Ticket) -> TagRule | None:
        matching = [rule for rule in self.rules if rule.matches(ticket)]
        if not matching:
            return None
        return max(matching, key=lambda rule: (rule.specificity, rule.threshold))

    def threshold_for(self, tags: frozenset[str], brand_id: str | None = None,
                      channel: str | None = None) -> tuple[int, str]:
        probe = Ticket(helpdesk="", id="", subject="", messages=(), tags=tags, brand_id=brand_id, channel=channel)
        rule = self.rule_for(probe)
        return (rule.threshold, rule.describe()) if rule else (self.threshold, "default threshold")

    @cached_property
    def version(self) -> str:
        """A short fingerprint of the policy, recorded with every decision."""
        return hashlib.sha256(policy_to_toml(self).encode()).hexdigest()[:12]


def rollout_bucket(helpdesk: str, ticket_id: str) -> int:
    """A ticket's fixed place in 0..9999: the same ticket always lands in the same bucket."""
    digest = hashlib.sha256(f"{helpdesk}:{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % ROLLOUT_BUCKETS


def in_rollout(ticket: Ticket, share: float) -> bool:
    return rollout_bucket(ticket.helpdesk, ticket.id) < round(share * ROLLOUT_BUCKETS / 100)


def decide(ticket: Ticket, draft: Draft, confidence: Confidence, policy: Policy) -> Decision:
    """Decide what happens to a ticket; a pure function of its inputs."""
    rule = policy.rule_for(ticket)
    threshold, described = (rule.threshold, rule.describe()) if rule else (policy.threshold, "default threshold")
    escalate = dict(action="escalate", threshold=threshold, rule=described, policy_version=policy.version,
                    escalation_group_id=policy.escalation_group_for(ticket.helpdesk), tags=(ESCALATED_TAG,))
    if policy.kill_switch:
        return Decision(**{**escalate, "rule": "kill switch"}, code="kill_switch",
                        reasons=("the kill switch is on: nothing is sent automatically",))
    if draft.declined:
        return Decision(**escalate, code="declined",
                        reasons=(f"no answer in the knowledge base: {draft.decline_reason}",))
    human_tags = sorted(ticket.tags & policy.always_human_tags)
    if human_tags:
        return Decision(**{**escalate, "rule": "always-human tags"}, code="always_human",
                        reasons=(f"tagged {', '.join(human_tags)}: always handled by a human",))
    allowed = rule.allow_risks if rule else frozenset()
    risks = [signal for signal in risk_signals(ticket) if signal.name not in allowed]
    if risks:
        return Decision(**escalate, code="risk",
                        reasons=tuple(f"{s.reason}: handed to a human whatever the confidence" for s in risks))
    if repeats_an_earlier_answer(ticket, draft):
        return Decision(**{**escalate, "rule": "repeated answer"}, code="repeated_answer",
                        reasons=("the draft mostly repeats an answer already sent on this ticket",))
    if confidence.score < threshold:
        weakest = sorted((c for c in confidence.components if c.weight), key=lambda c: c.value)[:2]
        reasons = (f"confidence {confidence.score} is below the {described} ({threshold})",) + tuple(
            f"weak {c.name.replace('_', ' ')}: {c.detail}" for c in weakest if c.value < 0.7
        )
        return Decision(**escalate, code="below_threshold", reasons=reasons)
    meets = f"confidence {confidence.score} meets the {described} ({threshold})"
    if not in_rollout(ticket, policy.rollout):
        return Decision(**escalate, code="outside_rollout", would_send=True,
                        reasons=(f"outside the rollout share ({_percent(policy.rollout)} of tickets): "
                                 "the reply was not sent", meets))
    if policy.shadow or (rule is not None and rule.shadow):
        where = "shadow mode" if policy.shadow else f"shadow mode on the {described}"
        return Decision(**{**escalate, "tags": (ESCALATED_TAG, SHADOW_TAG)}, code="shadow", would_send=True,
                        reasons=(f"{where}: this reply would have been sent", meets))
    return Decision(
        action="auto_send",
        threshold=threshold,
        rule=described,
        reasons=(meets,),
        status_after_reply=policy.reply_status,
        tags=(ANSWERED_TAG,),
        would_send=True,
        policy_version=policy.version,
    )


REPEATED_SHARE = 0.5  # of the draft's runs of three words found in one earlier bot reply
_RUN = 3


def repeats_an_earlier_answer(ticket: Ticket, draft: Draft) -> bool:
    """Whether most of the draft is already in one of the bot's public replies on the ticket."""
    wanted = _runs(re.sub(r"\[\d+\]", " ", draft.text))
    return bool(wanted) and any(
        len(wanted & _runs(m.text)) >= REPEATED_SHARE * len(wanted)
        for m in ticket.messages if m.author == "bot" and m.public
    )


def _runs(text: str) -> set[tuple[str, ...]]:
    """Runs of three words in a row; a text shorter than that is one run."""
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + _RUN]) for i in range(max(len(words) - _RUN + 1, 1))} if words else set()


def _percent(share: float) -> str:
    return f"{share:g}%"


# --- Loading and validating the TOML file -----------------------------------------------

_KEYS = {"threshold", "reply_status", "escalation_group_id", "always_human_tags", "rules", "rollout", "shadow",
         "kill_switch", "article_change_notes", "link_domains", *HELPDESKS}
_RULE_KEYS = {"tags", "brands", "channels", "threshold", "shadow", "allow_risks"}


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return Policy()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"policy {path}: {exc}") from None
    return parse_policy(raw, source=str(path))


def parse_policy_text(text: str, source: str = "policy") -> Policy:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_policy(raw, source)


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
    rollout = raw.get("rollout", 100)
    if not isinstance(rollout, (int, float)) or isinstance(rollout, bool) or not 0 <= rollout <= 100:
        raise ConfigError(f"{source}: rollout must be a percentage from 0 to 100, got {rollout!r}")
    raw_rules = raw.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(f"{source}: rules must be a list of [[rules]] tables, got {raw_rules!r}")
    rules = [_rule(rule, f"{source}: rules[{n}]") for n, rule in enumerate(raw_rules, 1)]
    return Policy(
        threshold=threshold,
        reply_status=reply_status,
        escalation_group_id=group or None,
        always_human_tags=_tags(raw.get("always_human_tags", []), f"{source}: always_human_tags"),
        rules=tuple(rules),
        rollout=float(rollout),
        shadow=_bool(raw.get("shadow", False), f"{source}: shadow"),
        kill_switch=_bool(raw.get("kill_switch", False), f"{source}: kill_switch"),
        article_change_notes=_bool(raw.get("article_change_notes", True), f"{source}: article_change_notes"),
        helpdesk_escalation_groups=tuple(helpdesk_groups),
        link_domains=_domains(raw.get("link_domains", []), f"{source}: link_domains"),
    )


def _group(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where} must be a helpdesk group id (integer), got {value!r}")
    return value


def _rule(rule, where: str) -> TagRule:
    if not isinstance(rule, dict) or set(rule) - _RULE_KEYS:
        raise ConfigError(f"{where}: a rule has `threshold` and at least one of `tags`, `brands`, `channels` "
                          "(and optionally `shadow`, `allow_risks`)")
    tags = _tags(rule.get("tags", []), f"{where}.tags")
    brands = _ids(rule.get("brands", []), f"{where}.brands")
    channels = _tags(rule.get("channels", []), f"{where}.channels")
    if not (tags or brands or channels):
        raise ConfigError(f"{where}.tags must name at least one tag (or give brands or channels)")
    allow_risks = _tags(rule.get("allow_risks", []), f"{where}.allow_risks")
    unknown = sorted(allow_risks - SIGNAL_NAMES)
    if unknown:
        raise ConfigError(f"{where}.allow_risks: unknown risk signal(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(SIGNAL_NAMES))}")
    return TagRule(tags=tags, threshold=_threshold(rule.get("threshold"), f"{where}.threshold"),
                   brands=brands, channels=channels, shadow=_bool(rule.get("shadow", False), f"{where}.shadow"),
                   allow_risks=allow_risks)


def _threshold(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise ConfigError(f"{where} must be an integer from 0 to 100, got {value!r}")
    return value


def _bool(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _domains(value, where: str) -> tuple[str, ...]:
    domain = re.compile(r"^(?:[\w-]+\.)+[\w-]{2,}$")
    if not isinstance(value, list) or not all(isinstance(d, str) and domain.match(d.strip().lower()) for d in value):
        raise ConfigError(f"{where} must be a list of domain names such as \"orbitask.com\" (no scheme, no path), "
                          f"got {value!r}")
    return tuple(sorted({d.strip().lower() for d in value}))


def _tags(value, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise ConfigError(f"{where} must be a list of tag names, got {value!r}")
    return frozenset(t.strip().lower() for t in value)


def _ids(value, where: str) -> frozenset[str]:
    ok = isinstance(value, list) and all(
        (isinstance(v, int) and not isinstance(v, bool) and v > 0) or (isinstance(v, str) and v.strip()) for v in value)
    if not ok:
        raise ConfigError(f"{where} must be a list of brand ids, got {value!r}")
    return frozenset(str(v).strip() for v in value)


# --- Writing it back (the dashboard's editor) ----------------------------------------------


def policy_to_toml(policy: Policy) -> str:
    """The policy as a TOML file that `parse_policy` reads back to an equal policy."""
    lines = [
        "# helpdesk-bot policy. Edited from the dashboard; every change is in its audit log.",
        f"threshold = {policy.threshold}",
        f"reply_status = {_string(policy.reply_status)}",
        f"escalation_group_id = {policy.escalation_group_id or 0}",
        f"always_human_tags = {_list(sorted(policy.always_human_tags))}",
        f"rollout = {_number(policy.rollout)}",
        f"shadow = {_toml_bool(policy.shadow)}",
        f"kill_switch = {_toml_bool(policy.kill_switch)}",
        f"article_change_notes = {_toml_bool(policy.article_change_notes)}",
    ]
    if policy.link_domains:
        lines.append(f"link_domains = {_list(list(policy.link_domains))}")
    for helpdesk, group in policy.helpdesk_escalation_groups:
        lines += ["", f"[{helpdesk}]", f"escalation_group_id = {group or 0}"]
    for rule in policy.rules:
        lines += ["", "[[rules]]"]
        if rule.tags:
            lines.append(f"tags = {_list(sorted(rule.tags))}")
        if rule.brands:
            lines.append(f"brands = {_list(sorted(rule.brands))}")
        if rule.channels:
            lines.append(f"channels = {_list(sorted(rule.channels))}")
        lines.append(f"threshold = {rule.threshold}")
        if rule.shadow:
            lines.append("shadow = true")
        if rule.allow_risks:
            lines.append(f"allow_risks = {_list(sorted(rule.allow_risks))}")
    return "\n".join(lines) + "\n"


def _string(value: str) -> str:
    # A JSON string is a TOML basic string when non-ASCII is left as is (TOML has no surrogate escapes).
    return json.dumps(value, ensure_ascii=False)


def _list(values) -> str:
    return "[" + ", ".join(_string(v) for v in values) + "]"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _toml_bool(value: bool) -> str:
    return "true" if value else "false"


def describe_changes(old: Policy, new: Policy) -> list[str]:
    """What changed between two policies, one line each, in the support team's words."""
    changes = []
    for name, label in (("threshold", "default threshold"), ("reply_status", "status after a reply"),
                        ("escalation_group_id", "escalation group"), ("rollout", "rollout share"),
                        ("shadow", "shadow mode"), ("kill_switch", "kill switch"),
                        ("article_change_notes", "notes on answers an article change affects")):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            if name == "rollout":
                before, after = _percent(before), _percent(after)
            changes.append(f"{label}: {_show(before)} → {_show(after)}")
    old_groups, new_groups = dict(old.helpdesk_escalation_groups), dict(new.helpdesk_escalation_groups)
    for helpdesk in HELPDESKS:
        before = old_groups.get(helpdesk, old.escalation_group_id)
        after = new_groups.get(helpdesk, new.escalation_group_id)
        if (helpdesk in old_groups or helpdesk in new_groups) and before != after:
            changes.append(f"{helpdesk} escalation group: {_show(before)} → {_show(after)}")
    if old.always_human_tags != new.always_human_tags:
        added, removed = new.always_human_tags - old.always_human_tags, old.always_human_tags - new.always_human_tags
        if added:
            changes.append(f"always-human tags added: {', '.join(sorted(added))}")
        if removed:
            changes.append(f"always-human tags removed: {', '.join(sorted(removed))}")
    key = lambda r: (r.tags, r.brands, r.channels)  # noqa: E731
    before_rules, after_rules = {key(r): r for r in old.rules}, {key(r): r for r in new.rules}
    for k, rule in after_rules.items():
        if k not in before_rules:
            changes.append(f"{rule.describe()} added: threshold {rule.threshold}" + (", shadow" if rule.shadow else ""))
        elif before_rules[k] != rule:
            was = before_rules[k]
            parts = []
            if was.threshold != rule.threshold:
                parts.append(f"threshold {was.threshold} → {rule.threshold}")
            if was.shadow != rule.shadow:
                parts.append(f"shadow {_show(was.shadow)} → {_show(rule.shadow)}")
            if was.allow_risks != rule.allow_risks:
                parts.append(f"allowed risks {', '.join(sorted(was.allow_risks)) or 'none'} → "
                             f"{', '.join(sorted(rule.allow_risks)) or 'none'}")
            changes.append(f"{rule.describe()}: {', '.join(parts)}")
    for k, rule in before_rules.items():
        if k not in after_rules:
            changes.append(f"{rule.describe()} removed (was {rule.threshold})")
    return changes


def _show(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "unchanged"
    return str(value)


# --- The policy in force, re-read when its file changes -------------------------------------


class PolicyFile:
    """The policy kept in a TOML file, re-read when the file changes (no restart needed).

    A file that becomes invalid is logged and the last valid policy stays in force: a typo in
    the file must not stop the bot. With `required` False a missing file is the default policy.
    """

    def __init__(self, path: Path, required: bool = True):
        self.path = Path(path)
        self.required = required
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._policy: Policy | None = None
        self.error: str | None = None
        self.current()  # an invalid file fails at start, naming itself

    @property
    def read_only(self) -> bool:
        """Whether the dashboard cannot save it: a Kubernetes ConfigMap, a read-only mount.
        (write_policy replaces the file through a new one beside it: the folder must be writable.)"""
        return not os.access(self.path.parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK))

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        # An editor's atomic replace changes the inode even within one mtime tick.
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> Policy:
        with self._lock:
            stamp = self._file_stamp()
            if self._policy is not None and stamp == self._stamp:
                return self._policy
            try:
                if stamp is None:
                    if self.required:
                        raise ConfigError(f"policy {self.path}: the file does not exist")
                    policy = Policy()
                else:
                    policy = load_policy(self.path)
            except ConfigError as exc:
                if self._policy is None:
                    raise
                if self.error != str(exc):
                    log.error("policy file changed but is invalid; keeping the previous policy: %s", exc)
                self.error, self._stamp = str(exc), stamp
                return self._policy
            if self._policy is not None and policy != self._policy:
                log.warning("policy reloaded from %s: %s", self.path, "; ".join(describe_changes(self._policy, policy)))
            self._policy, self._stamp, self.error = policy, stamp, None
            return policy


def write_policy(path: Path, policy: Policy) -> str:
    """Write the policy atomically (readers see the old file or the new one); return its text."""
    text = policy_to_toml(policy)
    parse_policy_text(text, str(path))  # never write what cannot be read back
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return text
