"""The groundedness check: a draft may say only what its sources say."""

from __future__ import annotations

import json

from click.testing import CliRunner

from helpdesk_bot.ops.cli import main
from helpdesk_bot.groundedness import grounding, sentence_support

SOURCE = "Annual plans can be refunded within 14 days of payment. Refunds go back to the original card."


def test_a_copied_sentence_is_fully_grounded():
    found = grounding("Annual plans can be refunded within 14 days of payment.", [SOURCE])
    assert found.score == 1.0 and found.weakest == 1.0 and found.unsupported == ()


def test_an_invented_promise_is_flagged_sentence_by_sentence():
    found = grounding("Annual plans can be refunded. We will also give you three free months as an apology!", [SOURCE])
    assert found.unsupported == ("We will also give you three free months as an apology!",)
    assert found.weakest < 0.5 and found.score < 0.8


def test_word_forms_still_count_as_support():
    assert grounding("Annual plan refunds go back to the original cards.", [SOURCE]).score == 1.0


def test_empty_text_is_not_grounded():
    assert grounding("", [SOURCE]).score == 0.0


def test_eval_groundedness_reports_auroc(tmp_path):
    tsv = tmp_path / "begin.tsv"
    rows = [
        ("Paris is the capital of France.", "Paris is the capital of France.", "Fully attributable"),
        ("The Nile flows north into the Mediterranean.", "The Nile flows north.", "Fully attributable"),
        ("Paris is the capital of France.", "Paris has ten million dragons living in towers.", "Not fully attributable"),
        ("The Nile flows north into the Mediterranean.", "I love swimming in rivers every summer.", "Not fully attributable"),
    ]
    tsv.write_text("model_name\tdata_source\tknowledge\tmessage\tresponse\tbegin_label\n"
                   + "".join(f"m\twow\t{k}\thi\t{r}\t{label}\n" for k, r, label in rows))
    result = CliRunner().invoke(main, ["eval", "groundedness", str(tsv)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"n": 4, "not_fully_attributable": 2, "auroc": 1.0}


def test_a_table_row_rests_on_its_own_row_when_another_shares_as_many_words():
    # "billed annually" and "billed monthly" stem alike: the monthly price must not be checked
    # against the annual row and held as a wrong number.
    body = "\n".join(["| | Free | Team | Business |", "| Price per seat / month, billed annually | $0 | $8 | $15 |",
                      "| Price per seat / month, billed monthly | $0 | $10 | $18 |"])
    [support] = sentence_support("Price per seat / month, billed monthly — Team: $10.", [("Plans and pricing", body)])
    assert support.supported and "$10" in support.passage
    [wrong] = sentence_support("Price per seat / month, billed monthly — Team: $12.", [("Plans and pricing", body)])
    assert not wrong.supported
