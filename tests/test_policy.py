"""The policy: `decide` at every boundary, and validation of the ops team's TOML file."""

from __future__ import annotations

import tomllib

import pytest

from helpdesk_bot.domain import Component, Confidence, Draft, Message, Ticket
from helpdesk_bot.errors import ConfigError
from helpdesk_bot.policy import (
    ANSWERED_TAG,
    ESCALATED_TAG,
    EXAMPLE,
    Policy,
    TagRule,
    decide,
    load_policy,
    parse_policy,
)


def ticket(*tags: str) -> Ticket:
    return Ticket(helpdesk="sandbox", id="1", subject="Invoice",
                  messages=(Message("customer", "Where is my invoice?"),), tags=frozenset(tags))


def answered() -> Draft:
    return Draft(text="Invoices are under Billing [1]", cited=("billing#0",), declined=False, drafter="extractive")


def declined(reason: str = "the best passage covers only 10% of the question") -> Draft:
    return Draft(text="", cited=(), declined=True, drafter="extractive", decline_reason=reason)


def confidence(score: int, **values: float) -> Confidence:
    """A confidence of `score`; components default to strong (0.9) unless given."""
    names = ("retrieval_strength", "question_coverage", "draft_support", "keyword_match")
    return Confidence(score=score, components=tuple(
        Component(name, values.get(name, 0.9), 0.25, f"{name} detail") for name in names
    ))


def rule(threshold: int, *tags: str) -> TagRule:
    return TagRule(tags=frozenset(tags), threshold=threshold)


# --- decide: the default threshold ------------------------------------------------------------


@pytest.mark.parametrize("score, action", [(0, "escalate"), (69, "escalate"), (70, "auto_send"), (100, "auto_send")])
def test_default_threshold_is_70(score, action):
    decision = decide(ticket(), answered(), confidence(score), Policy())
    assert decision.action == action
    assert decision.threshold == 70
    assert decision.rule == "default threshold"


def test_auto_send_decision_carries_tag_status_and_reason():
    decision = decide(ticket(), answered(), confidence(82), Policy(reply_status="solved", escalation_group_id=42))
    assert decision.tags == (ANSWERED_TAG,)
    assert decision.status_after_reply == "solved"
    assert decision.escalation_group_id is None
    assert decision.reasons == ("confidence 82 meets the default threshold (70)",)


def test_escalation_carries_tag_group_and_reasons():
    decision = decide(ticket(), answered(), confidence(69), Policy(escalation_group_id=42))
    assert decision.tags == (ESCALATED_TAG,)
    assert decision.escalation_group_id == 42
    assert decision.reasons[0] == "confidence 69 is below the default threshold (70)"


def test_escalation_names_the_two_weakest_components_below_0_7():
    score = confidence(40, retrieval_strength=0.2, keyword_match=0.5, draft_support=0.6)
    reasons = decide(ticket(), answered(), score, Policy()).reasons
    assert reasons[1:] == ("weak retrieval strength: retrieval_strength detail",
                           "weak keyword match: keyword_match detail")


def test_escalation_names_no_weak_component_when_all_are_strong():
    assert len(decide(ticket(), answered(), confidence(60), Policy()).reasons) == 1


# --- decide: per-tag rules -----------------------------------------------------------------------


@pytest.mark.parametrize("score, action", [(84, "escalate"), (85, "auto_send")])
def test_rule_for_a_tag_on_the_ticket_sets_the_threshold(score, action):
    policy = Policy(rules=(rule(85, "billing"),))
    decision = decide(ticket("billing"), answered(), confidence(score), policy)
    assert (decision.action, decision.threshold, decision.rule) == (action, 85, "rule for tags billing")


def test_rule_can_lower_the_threshold():
    policy = Policy(rules=(rule(50, "howto"),))
    assert decide(ticket("howto"), answered(), confidence(50), policy).action == "auto_send"
    assert decide(ticket("howto"), answered(), confidence(49), policy).action == "escalate"


def test_rule_only_partly_on_the_ticket_does_not_apply():
    policy = Policy(rules=(rule(95, "billing", "refund"),))
    decision = decide(ticket("billing"), answered(), confidence(80), policy)
    assert (decision.action, decision.threshold, decision.rule) == ("auto_send", 70, "default threshold")


@pytest.mark.parametrize("rules", [
    (rule(90, "billing"), rule(60, "billing", "invoice")),
    (rule(60, "billing", "invoice"), rule(90, "billing")),  # order in the file does not matter
])
def test_most_specific_rule_wins_even_when_lower(rules):
    decision = decide(ticket("billing", "invoice"), answered(), confidence(65), Policy(rules=rules))
    assert decision.threshold == 60
    assert decision.rule == "rule for tags billing + invoice"
    assert decision.action == "auto_send"


@pytest.mark.parametrize("rules", [
    (rule(75, "billing"), rule(90, "enterprise")),
    (rule(90, "enterprise"), rule(75, "billing")),
])
def test_equally_specific_rules_take_the_higher_threshold(rules):
    decision = decide(ticket("billing", "enterprise"), answered(), confidence(89), Policy(rules=rules))
    assert decision.threshold == 90
    assert decision.rule == "rule for tags enterprise"
    assert decision.action == "escalate"


# --- decide: precedence of the hard stops --------------------------------------------------------


def test_always_human_tag_escalates_even_at_confidence_100():
    policy = Policy(always_human_tags=frozenset({"legal", "vip"}), escalation_group_id=7)
    decision = decide(ticket("vip", "billing"), answered(), confidence(100), policy)
    assert decision.action == "escalate"
    assert decision.rule == "always-human tags"
    assert decision.reasons == ("tagged vip: always handled by a human",)
    assert decision.tags == (ESCALATED_TAG,)
    assert decision.escalation_group_id == 7


def test_always_human_tags_are_all_named():
    policy = Policy(always_human_tags=frozenset({"legal", "vip"}))
    decision = decide(ticket("vip", "legal"), answered(), confidence(100), policy)
    assert decision.reasons == ("tagged legal, vip: always handled by a human",)


def test_declined_draft_escalates_even_at_threshold_0():
    decision = decide(ticket(), declined("nothing about invoices"), confidence(0), Policy(threshold=0))
    assert decision.action == "escalate"
    assert decision.reasons == ("no answer in the knowledge base: nothing about invoices",)
    assert decision.tags == (ESCALATED_TAG,)


def test_declined_draft_is_reported_before_always_human_tags():
    policy = Policy(always_human_tags=frozenset({"vip"}))
    decision = decide(ticket("vip"), declined(), confidence(0), policy)
    assert decision.reasons[0].startswith("no answer in the knowledge base")


def test_threshold_0_sends_any_answered_draft():
    assert decide(ticket(), answered(), confidence(0), Policy(threshold=0)).action == "auto_send"


def test_threshold_100_needs_full_confidence():
    policy = Policy(threshold=100)
    assert decide(ticket(), answered(), confidence(99), policy).action == "escalate"
    assert decide(ticket(), answered(), confidence(100), policy).action == "auto_send"


# --- parsing and loading the policy file -------------------------------------------------------


def parse(toml: str) -> Policy:
    return parse_policy(tomllib.loads(toml))


def test_example_policy_parses():
    policy = parse(EXAMPLE)
    assert policy.threshold == 70
    assert policy.reply_status == "pending"
    assert policy.escalation_group_id is None  # 0 means "leave the group unchanged"
    assert policy.always_human_tags == frozenset({"legal", "security", "vip"})
    assert policy.rules == (TagRule(frozenset({"billing"}), 85),)


def test_empty_policy_is_the_default_policy():
    assert parse("") == Policy()


def test_tags_are_trimmed_and_lower_cased():
    policy = parse('always_human_tags = [" VIP "]\n[[rules]]\ntags = ["Billing"]\nthreshold = 80\n')
    assert policy.always_human_tags == frozenset({"vip"})
    assert policy.rules[0].tags == frozenset({"billing"})


@pytest.mark.parametrize("toml, names", [
    ("treshold = 70", "treshold"),
    ("threshold = 101", "threshold"),
    ("threshold = -1", "threshold"),
    ('threshold = "70"', "threshold"),
    ("threshold = true", "threshold"),
    ("threshold = 70.5", "threshold"),
    ('reply_status = "closed"', "reply_status"),
    ("reply_status = 1", "reply_status"),
    ("escalation_group_id = -1", "escalation_group_id"),
    ('escalation_group_id = "42"', "escalation_group_id"),
    ("escalation_group_id = true", "escalation_group_id"),
    ('always_human_tags = "vip"', "always_human_tags"),
    ('always_human_tags = ["vip", ""]', "always_human_tags"),
    ("always_human_tags = [1]", "always_human_tags"),
    ("[[rules]]\nthreshold = 80", "rules[1].tags"),
    ("[[rules]]\ntags = []\nthreshold = 80", "rules[1].tags"),
    ('[[rules]]\ntags = "billing"\nthreshold = 80', "rules[1].tags"),
    ('[[rules]]\ntags = ["billing"]', "rules[1].threshold"),
    ('[[rules]]\ntags = ["billing"]\nthreshold = 101', "rules[1].threshold"),
    ('[[rules]]\ntags = ["billing"]\nthreshold = 80\ngroup = 5', "rules[1]"),
    ('[[rules]]\ntags = ["a"]\nthreshold = 80\n[[rules]]\ntags = ["b"]\nthreshold = "high"', "rules[2].threshold"),
    ('rules = ["billing"]', "rules[1]"),
])
def test_bad_setting_is_refused_by_name(toml, names):
    with pytest.raises(ConfigError) as caught:
        parse(toml)
    assert names in str(caught.value)


def test_rules_that_are_not_a_list_are_refused_by_name():
    with pytest.raises(ConfigError, match="rules"):
        parse("rules = 5")


def test_load_policy_without_a_path_is_the_default():
    assert load_policy(None) == Policy()


def test_load_policy_reads_the_file(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_policy(path) == parse(EXAMPLE)


def test_load_policy_names_the_file_in_validation_errors(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("threshold = 101\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="policy.toml: threshold"):
        load_policy(path)


def test_missing_policy_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.toml"):
        load_policy(tmp_path / "nowhere.toml")


def test_policy_file_that_is_not_toml_is_a_config_error(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("threshold: 70\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="policy.toml"):
        load_policy(path)


def test_policy_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_bytes(b'always_human_tags = ["s\xe9curit\xe9"]\n')  # saved as Latin-1
    with pytest.raises(ConfigError, match="policy.toml"):
        load_policy(path)
