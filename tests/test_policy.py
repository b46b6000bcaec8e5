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
    policy_to_toml,
)


def ticket(*tags: str, id: str = "1", brand: str | None = None, channel: str | None = None) -> Ticket:
    return Ticket(helpdesk="sandbox", id=id, subject="Invoice", messages=(Message("customer", "Where is my invoice?"),),
                  tags=frozenset(tags), brand_id=brand, channel=channel)


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


def asking(text: str, *tags: str) -> Ticket:
    return Ticket(helpdesk="sandbox", id="1", subject="", messages=(Message("customer", text),), tags=frozenset(tags))


@pytest.mark.parametrize("text", [
    "Can I get a refund for the annual plan?",
    "I want to dispute this charge.",
    "My lawyer will be in touch about this invoice.",
    "Someone else logged in to my account and changed the password.",
    "How do I cancel my subscription?",
])
@pytest.mark.parametrize("threshold", [0, 50, 70, 100])
def test_a_risk_signal_hands_the_ticket_over_whatever_the_threshold(text, threshold):
    policy = Policy(threshold=threshold, rules=(rule(threshold, "billing"),))
    decision = decide(asking(text, "billing"), answered(), confidence(100), policy)
    assert (decision.action, decision.code) == ("escalate", "risk")
    assert "handed to a human whatever the confidence" in decision.reasons[0]


def test_a_rule_can_allow_a_named_risk_on_its_tickets_explicitly():
    allowing = TagRule(tags=frozenset({"billing"}), threshold=80, allow_risks=frozenset({"refund"}))
    policy = Policy(rules=(allowing,))
    refund = "Can I get a refund for the annual plan?"
    assert decide(asking(refund, "billing"), answered(), confidence(85), policy).action == "auto_send"
    assert decide(asking(refund, "billing"), answered(), confidence(75), policy).code == "below_threshold"
    assert decide(asking(refund, "sales"), answered(), confidence(100), policy).code == "risk"  # other tags: held
    lawyer = "My lawyer asks whether I can get a refund."
    assert decide(asking(lawyer, "billing"), answered(), confidence(100), policy).code == "risk"  # only what is named


def test_allow_risks_is_read_written_and_checked():
    text = '[[rules]]\ntags = ["billing"]\nthreshold = 85\nallow_risks = ["refund", "cancellation"]\n'
    policy = parse_policy(tomllib.loads(text))
    assert policy.rules[0].allow_risks == {"refund", "cancellation"}
    assert parse_policy(tomllib.loads(policy_to_toml(policy))) == policy
    with pytest.raises(ConfigError, match="allow_risks: unknown risk signal"):
        parse_policy(tomllib.loads('[[rules]]\ntags = ["billing"]\nthreshold = 85\nallow_risks = ["refunds"]\n'))


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


# --- decide: brand and channel rules -----------------------------------------------------------


def brand_rule(threshold: int, *brands: str, tags=(), channels=(), shadow=False) -> TagRule:
    return TagRule(tags=frozenset(tags), threshold=threshold, brands=frozenset(brands),
                   channels=frozenset(channels), shadow=shadow)


@pytest.mark.parametrize("brand, channel, threshold, rule_text", [
    ("111", "web", 90, "rule for brand 111"),
    ("222", "web", 70, "default threshold"),
    (None, "web", 70, "default threshold"),
    ("222", "email", 60, "rule for channel email"),
    ("111", "email", 95, "rule for brand 111, channel email"),  # two conditions beat one
])
def test_brand_and_channel_rules_set_the_threshold(brand, channel, threshold, rule_text):
    policy = Policy(rules=(brand_rule(90, "111"), TagRule(frozenset(), 60, channels=frozenset({"email"})),
                           brand_rule(95, "111", channels=("email",))))
    decision = decide(ticket(brand=brand, channel=channel), answered(), confidence(threshold), policy)
    assert (decision.threshold, decision.rule, decision.action) == (threshold, rule_text, "auto_send")
    assert decide(ticket(brand=brand, channel=channel), answered(), confidence(threshold - 1), policy).action == "escalate"


def test_a_tag_and_a_brand_condition_beat_two_tags_on_a_tie_by_threshold():
    policy = Policy(rules=(rule(80, "billing", "refund"), brand_rule(50, "111", tags=("billing",))))
    decision = decide(ticket("billing", "refund", brand="111"), answered(), confidence(60), policy)
    assert decision.threshold == 80  # both name two conditions: the higher threshold wins
    assert decision.action == "escalate"


def test_equal_rules_keep_the_first_in_the_file():
    policy = Policy(rules=(brand_rule(80, "111"), brand_rule(80, "111", "222")))
    assert decide(ticket(brand="111"), answered(), confidence(90), policy).rule == "rule for brand 111"


# --- decide: kill switch, rollout, shadow ---------------------------------------------------------


def test_kill_switch_escalates_everything_with_its_reason():
    policy = Policy(kill_switch=True, threshold=0, escalation_group_id=7)
    for draft in (answered(), declined()):
        decision = decide(ticket("vip"), draft, confidence(100), policy)
        assert (decision.action, decision.code, decision.rule) == ("escalate", "kill_switch", "kill switch")
        assert decision.reasons == ("the kill switch is on: nothing is sent automatically",)
        assert decision.escalation_group_id == 7 and decision.would_send is False


def test_rollout_share_is_the_same_tickets_every_time():
    tickets = [ticket(id=str(n)) for n in range(2000)]
    chosen = {t.id for t in tickets if decide(t, answered(), confidence(90), Policy(rollout=10)).action == "auto_send"}
    again = {t.id for t in tickets if decide(t, answered(), confidence(90), Policy(rollout=10)).action == "auto_send"}
    assert chosen == again
    assert 150 <= len(chosen) <= 250  # about 10% of 2000
    wider = {t.id for t in tickets if decide(t, answered(), confidence(90), Policy(rollout=20)).action == "auto_send"}
    assert chosen < wider  # raising the share only adds tickets


def test_rollout_bucket_is_a_hash_of_helpdesk_and_ticket_id():
    from helpdesk_bot.policy import in_rollout, rollout_bucket

    assert rollout_bucket("zendesk", "35436") == rollout_bucket("zendesk", "35436")
    assert rollout_bucket("zendesk", "35436") != rollout_bucket("intercom", "35436")
    t = ticket(id="42")
    bucket = rollout_bucket("sandbox", "42")
    assert in_rollout(t, (bucket + 1) / 100) and not in_rollout(t, bucket / 100)


@pytest.mark.parametrize("share, action", [(0, "escalate"), (100, "auto_send")])
def test_rollout_0_sends_nothing_and_100_sends_everything(share, action):
    decisions = [decide(ticket(id=str(n)), answered(), confidence(90), Policy(rollout=share)) for n in range(200)]
    assert {d.action for d in decisions} == {action}


def test_ticket_outside_the_rollout_is_escalated_as_would_send():
    from helpdesk_bot.policy import rollout_bucket

    outside = next(str(n) for n in range(100) if rollout_bucket("sandbox", str(n)) >= 5000)
    decision = decide(ticket(id=outside), answered(), confidence(90), Policy(rollout=50))
    assert (decision.action, decision.code, decision.would_send) == ("escalate", "outside_rollout", True)
    assert decision.reasons[0] == "outside the rollout share (50% of tickets): the reply was not sent"


def test_below_threshold_is_not_would_send_even_outside_the_rollout():
    decision = decide(ticket(), answered(), confidence(69), Policy(rollout=0))
    assert (decision.code, decision.would_send) == ("below_threshold", False)


def test_shadow_mode_escalates_what_would_have_been_sent():
    decision = decide(ticket(), answered(), confidence(90), Policy(shadow=True, escalation_group_id=7))
    assert (decision.action, decision.code, decision.would_send) == ("escalate", "shadow", True)
    assert decision.tags == (ESCALATED_TAG, "ai_shadow")
    assert decision.reasons == ("shadow mode: this reply would have been sent",
                                "confidence 90 meets the default threshold (70)")
    assert decision.escalation_group_id == 7


def test_shadow_mode_does_not_change_escalations():
    decision = decide(ticket(), answered(), confidence(50), Policy(shadow=True))
    assert (decision.code, decision.would_send, decision.tags) == ("below_threshold", False, (ESCALATED_TAG,))


def test_shadow_on_a_rule_applies_only_where_that_rule_sets_the_threshold():
    policy = Policy(rules=(brand_rule(60, "111", shadow=True),))
    assert decide(ticket(brand="111"), answered(), confidence(90), policy).code == "shadow"
    assert decide(ticket(brand="111"), answered(), confidence(90), policy).reasons[0] == (
        "shadow mode on the rule for brand 111: this reply would have been sent")
    assert decide(ticket(brand="222"), answered(), confidence(90), policy).action == "auto_send"


def test_auto_send_is_would_send_with_no_code():
    decision = decide(ticket(), answered(), confidence(90), Policy())
    assert (decision.action, decision.code, decision.would_send) == ("auto_send", "", True)


@pytest.mark.parametrize("policy, code", [
    (Policy(kill_switch=True, always_human_tags=frozenset({"vip"})), "kill_switch"),
    (Policy(always_human_tags=frozenset({"vip"}), shadow=True), "always_human"),
    (Policy(always_human_tags=frozenset({"vip"}), rollout=0), "always_human"),
    (Policy(threshold=95, rollout=0), "below_threshold"),
    (Policy(rollout=0, shadow=True), "outside_rollout"),
])
def test_precedence_of_the_hard_stops(policy, code):
    assert decide(ticket("vip") if "vip" in str(policy) else ticket(), answered(), confidence(90), policy).code == code


# --- the new settings in the file -----------------------------------------------------------------


def test_rollout_shadow_kill_switch_and_brand_rules_parse():
    policy = parse('rollout = 12.5\nshadow = true\nkill_switch = false\n'
                   '[[rules]]\nbrands = [360001, "360002"]\nchannels = ["Email"]\nthreshold = 80\nshadow = true\n')
    assert (policy.rollout, policy.shadow, policy.kill_switch) == (12.5, True, False)
    assert policy.rules == (TagRule(frozenset(), 80, frozenset({"360001", "360002"}), frozenset({"email"}), True),)


@pytest.mark.parametrize("toml, names", [
    ("rollout = 101", "rollout"),
    ("rollout = -0.5", "rollout"),
    ('rollout = "10%"', "rollout"),
    ("rollout = true", "rollout"),
    ('shadow = "yes"', "shadow"),
    ("kill_switch = 1", "kill_switch"),
    ("[[rules]]\nbrands = [0]\nthreshold = 80", "rules[1].brands"),
    ('[[rules]]\nbrands = [""]\nthreshold = 80', "rules[1].brands"),
    ("[[rules]]\nchannels = [3]\nthreshold = 80", "rules[1].channels"),
    ('[[rules]]\ntags = ["a"]\nthreshold = 80\nshadow = "on"', "rules[1].shadow"),
])
def test_bad_new_setting_is_refused_by_name(toml, names):
    with pytest.raises(ConfigError) as caught:
        parse(toml)
    assert names in str(caught.value)


@pytest.mark.parametrize("policy", [
    Policy(),
    parse(EXAMPLE),
    Policy(threshold=55, reply_status="solved", escalation_group_id=360001, always_human_tags=frozenset({"vip", "légal"}),
           rollout=12.5, shadow=True, kill_switch=True,
           rules=(rule(85, "billing"), brand_rule(60, "111", tags=("a b",), channels=("email",), shadow=True))),
])
def test_policy_written_as_toml_reads_back_equal(policy):
    from helpdesk_bot.policy import policy_to_toml

    assert parse(policy_to_toml(policy)) == policy


def test_describe_changes_names_each_change():
    from helpdesk_bot.policy import describe_changes

    old = Policy(rules=(rule(85, "billing"), rule(90, "legal")))
    new = Policy(threshold=75, rollout=10, shadow=True, always_human_tags=frozenset({"vip"}),
                 rules=(rule(60, "billing"), rule(80, "howto")))
    assert describe_changes(old, new) == [
        "default threshold: 70 → 75", "rollout share: 100% → 10%", "shadow mode: off → on",
        "always-human tags added: vip", "rule for tags billing: threshold 85 → 60",
        "rule for tags howto added: threshold 80", "rule for tags legal removed (was 90)",
    ]
    assert describe_changes(old, old) == []


# --- the policy in force, re-read when the file changes --------------------------------------------


def test_policy_file_is_reloaded_when_it_changes(tmp_path):
    from helpdesk_bot.policy import PolicyFile, write_policy

    path = tmp_path / "policy.toml"
    path.write_text("threshold = 70\n")
    source = PolicyFile(path)
    assert source.current().threshold == 70
    write_policy(path, Policy(threshold=80))
    assert source.current().threshold == 80
    path.write_text("threshold = 81\n")  # an editor that rewrites in place, same size, same second
    assert source.current().threshold == 81


def test_invalid_edit_keeps_the_last_good_policy(tmp_path, caplog):
    from helpdesk_bot.policy import PolicyFile

    path = tmp_path / "policy.toml"
    path.write_text("threshold = 70\n")
    source = PolicyFile(path)
    path.write_text("threshold = 700\n")
    assert source.current().threshold == 70
    assert "threshold" in source.error and "keeping the previous policy" in caplog.text
    path.write_text("threshold = 65\n")
    assert source.current().threshold == 65 and source.error is None


def test_policy_file_that_is_invalid_at_start_fails(tmp_path):
    from helpdesk_bot.policy import PolicyFile

    path = tmp_path / "policy.toml"
    path.write_text("threshold = 700\n")
    with pytest.raises(ConfigError, match="threshold"):
        PolicyFile(path)
    with pytest.raises(ConfigError, match="does not exist"):
        PolicyFile(tmp_path / "none.toml")


def test_optional_policy_file_is_the_default_until_it_is_written(tmp_path):
    from helpdesk_bot.policy import PolicyFile, write_policy

    path = tmp_path / "policy.toml"
    source = PolicyFile(path, required=False)
    assert source.current() == Policy()
    write_policy(path, Policy(kill_switch=True))
    assert source.current().kill_switch is True
