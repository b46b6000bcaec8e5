"""Does a draft say only what its sources say? A sentence-level check that needs no LLM.

A sentence is as grounded as the share of its words found in the sources; the draft is as
grounded as its weakest sentence, and overall as the share of all its words found. Words
are stemmed, so "refunded" meets "refund"; function words count too, because invented
claims bring new ones ("will", "never", "free") as much as new nouns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helpdesk_bot.language import LEAD_IN, lead_in_title
from helpdesk_bot.text import STOPWORDS, sentences, stem, stopwords, tokens


@dataclass(frozen=True)
class Grounding:
    score: float  # share of the draft's words found in the sources, 0..1
    weakest: float  # the least grounded sentence's share
    unsupported: tuple[str, ...]  # sentences with less than SENTENCE_FLOOR of their words found


SENTENCE_FLOOR = 0.8


def grounding(text: str, sources: list[str]) -> Grounding:
    known = set()
    for source in sources:
        known.update(tokens(source))
    words_found = words_total = 0
    weakest, unsupported = 1.0, []
    for sentence in sentences(text):
        words = tokens(sentence)
        if not words:
            continue
        found = sum(w in known for w in words)
        words_found, words_total = words_found + found, words_total + len(words)
        share = found / len(words)
        weakest = min(weakest, share)
        if share < SENTENCE_FLOOR:
            unsupported.append(sentence)
    score = words_found / words_total if words_total else 0.0
    return Grounding(score=score, weakest=weakest if words_total else 0.0, unsupported=tuple(unsupported))


# --- Sentence by sentence: what each sentence of a draft rests on --------------------------------------
#
# No entailment model ships inside a package (docs: models.md), so each sentence of a draft is
# aligned with the source passage (a sentence, up to three adjacent ones, or a table cell) that
# shares most of its words, and the facts a reader acts on must match that passage exactly:
# numbers with their units, plan names, other proper names, and what is negated. A sentence that reuses the help center's
# words around a changed number, plan or "not" is caught here, where a bag of words lets it pass.

SENTENCE_SUPPORT = 0.7  # share of a sentence's content words that its source passage must hold
_NEGATIONS = frozenset("not no never cannot can't don't doesn't didn't won't isn't aren't wasn't weren't shouldn't "
                       "couldn't without unable none nothing neither nor n't".split())
_NUMBER_WORDS = {w: str(n) for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split()) if n != 1}
_NUMBER = re.compile(r"(?<![\w.])([$€£]\s?)?(\d+(?:[.,]\d+)*)\s*(?:-\s*)?(%|[A-Za-z]+)?")
_PLAN = re.compile(r"\b([A-Z][\w+-]*)\s+(?:plan|tier|edition|subscription|trial|workspace plan)s?\b|"
                   r"\b(?:plan|tier|edition)\s+([A-Z][\w+-]*)\b")
_CAPITALISED = re.compile(r"(?<=[\w,;)] )([A-Z][\w+-]*[a-z0-9][\w+-]*)")
# Conversation, not claims: checked for links and promises elsewhere, never against the sources.
_COURTESY = re.compile(
    r"(?i)^(?:i hope (?:this|that) helps|hope (?:this|that) helps|let (?:me|us) know if .*|"
    r"(?:please )?(?:feel free to|don't hesitate to) (?:ask|reach out|contact us|get in touch|write).*|"
    r"(?:i'm|i am|we're|we are) (?:happy|glad) to help.*|glad to help|happy to help|thanks? (?:you )?for .*|"
    r"(?:sure|of course|certainly|absolutely|great question|good question|no problem)[!,.]?(?: here(?:'s| is) how)?)"
    r"[.!:]?$")
# Links are judged by the link check; a sentence that only points at one ("The full policy is
# here: https://…", "More in:") carries no claim of its own.
_LINK_LIKE = re.compile(r"\S+://\S+|\b(?:[\w-]+\.)+[a-z]{2,}\b[^\s,;]*", re.I)
_POINTER = re.compile(r"://|\b(?:[\w-]+\.)+[a-z]{2,}\b|:\s*$", re.I)


# The extractive drafter's one-line lead-in ("From our article “Refunds” [1]:", in the customer's
# language) names where the answer comes from; it makes no claim of its own, so neither check reads it.


def without_lead_in(text: str, titles: str | None = None) -> str:
    """The draft's answer without the extractive drafter's lead-in, which only names the source.

    With `titles` (the sources' titles and headings), a lead-in naming an article that is not
    among them stays, to be checked like any sentence: a model could dress a claim up as a title.
    """
    return LEAD_IN.sub(lambda m: "" if titles is None or lead_in_title(m) in titles else m[0], text)


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str
    passage: str  # the source passage it rests on; "" when none shares a word
    share: float  # of its content words found in that passage (at half weight in its title and heading)
    mismatches: tuple[str, ...]  # facts that differ from the passage: numbers, plans, names, negation

    @property
    def supported(self) -> bool:
        return self.share >= SENTENCE_SUPPORT and not self.mismatches


@dataclass(frozen=True)
class _Passage:
    text: str
    words: frozenset[str]
    context: frozenset[str]  # the title and heading of its article: "it" in a step means them
    cell: bool = False  # a table cell with its row's and column's names


def sentence_support(text: str, sources: list[tuple[str, str]]) -> list[SentenceSupport]:
    """Each claim-bearing sentence of `text` aligned with its best passage in `sources`.

    `sources` are (title and heading, body text) pairs; passages are one body sentence or up
    to three adjacent ones, so a sentence that joins steps still finds its support.
    """
    passages = []
    for context, body in sources:
        context_words = frozenset(_content(context))
        lines = _passages(body)
        for i, (line, cell) in enumerate(lines):
            joined = [line]
            for following, following_cell in lines[i + 1:i + 3]:  # up to three steps joined in one sentence
                if cell or following_cell:
                    break
                joined.append(f"{joined[-1]} {following}")
            passages += [_Passage(passage, frozenset(_content(passage)), context_words, cell) for passage in joined]
    all_source_words = {w.lower() for pair in sources for part in pair for w in re.findall(r"[\w+-]+", part)}
    results = []
    answer = without_lead_in(text, "\n".join(context for context, _ in sources))
    for sentence in sentences("\n".join(_LIST_MARKER.sub("", line.strip()) for line in answer.splitlines())):
        words = _content(_LINK_LIKE.sub(" ", sentence))
        if _COURTESY.match(sentence.strip()) or not words or (len(words) < 3 and _POINTER.search(sentence)):
            continue
        scored = []
        for passage in passages:
            # The article's title and heading say what a passage is about, not what it claims: half weight.
            found = sum(1.0 if w in passage.words else 0.5 if w in passage.context else 0.0 for w in words) / len(words)
            scored.append((found, passage))
        share, best = max(scored, key=lambda p: (p[0], -len(p[1].text)), default=(0.0, None))
        if best and best.cell:
            # Cells that share as many words (rows "billed annually" and "billed monthly" stem alike):
            # the sentence rests on the one whose figures agree, if one does.
            tied = [p for found, p in scored if found == share and p.cell]
            best = next((p for p in tied if not _mismatches(sentence, p.text, all_source_words)), best)
        mismatches = _mismatches(sentence, best.text if best else "", all_source_words)
        results.append(SentenceSupport(sentence, best.text if best else "", share, tuple(mismatches)))
    return results


def _scopes(text: str) -> list[set[str]]:
    """What each "not" in `text` bears on: the content words right after it ("does not send codes"),
    or before it when it ends the clause ("... is not allowed")."""
    words = re.findall(r"[\w']+", text.lower().replace("’", "'"))
    scopes = []
    for i, word in enumerate(words):
        if word in _NEGATIONS or word.endswith("n't"):
            after = [stem(w) for w in words[i + 1:i + 6] if w not in STOPWORDS][:3]
            before = [stem(w) for w in words[max(0, i - 5):i] if w not in STOPWORDS][-3:]
            scopes.append(set(after or before) | ({after[0]} if after else set()))
    return scopes


def _denies(passage: str, words: set[str]) -> bool:
    """Whether a "not" in `passage` bears on `words`: "Orbitask does not send codes by SMS" denies
    "Orbitask sends codes by SMS"; "if you are not happy, ..." denies nothing in "refunds take 14 days"."""
    return any(len(scope & words) >= 2 or (scope & words and len(words) <= 4) for scope in _scopes(passage))


def _negation_matches(sentence: str, passage: str) -> bool:
    """Whether every "not" of `sentence` bears on what a "not" of `passage` bears on."""
    theirs = _scopes(passage)
    return all(any(scope & other for other in theirs) for scope in _scopes(sentence))


_LIST_MARKER = re.compile(r"^(?:\d{1,2}[.)]|[-•*])\s+")


def _passages(body: str) -> list[tuple[str, bool]]:
    """(passage, is a table cell): the body's sentences, and each table cell on its own with its
    row's and column's names, so "Free plan storage is 1 TB" meets "Free, Total storage: 1 GB"
    and not the whole table."""
    out, header = [], None
    for line in body.splitlines():
        line = _LIST_MARKER.sub("", line.strip())  # "2. Enter up to 50 addresses": the step, not its number
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 2:
            header = None
            out += [(sentence, False) for sentence in sentences(line)]
        elif header is None:
            header = cells
            out.append((" ".join(cells), True))
        else:
            out += [(f"{header[0]} {cells[0]}, {header[j] if j < len(header) else ''}: {cell}", True)
                    for j, cell in enumerate(cells[1:], 1)]
    return out


# Stopwords elsewhere, but here they make the claim: "refunds any payment at any time", "always free".
_QUANTIFIERS = frozenset(stem(w) for w in "any all always every never only anytime forever unlimited instantly "
                                          "immediately".split())


_FILLER = frozenset("yes per via etc".split())


def _content(text: str) -> list[str]:
    words = [t for t in tokens(text) if t not in _FILLER]
    return [t for t in words if (t not in stopwords() or t in _QUANTIFIERS) and not t.isdigit()] or \
        [t for t in words if t.isdigit()]


def _mismatches(sentence: str, passage: str, source_words: set[str]) -> list[str]:
    found = []
    ours, theirs = _numbers(sentence), _numbers(passage)
    for value, unit in sorted(ours):
        if not any(v == value and (not unit or not u or unit == u) for v, u in theirs):
            found.append(f"{value}{' ' + unit if unit else ''} is not in its source")
    plans_there = {w.lower() for w in re.findall(r"[\w+-]+", passage)}
    for match in _PLAN.finditer(sentence):
        name = (match.group(1) or match.group(2)).lower()
        if name not in plans_there and name not in {"your", "the", "this", "that", "a", "our", "each", "every", "any"}:
            found.append(f"plan {match.group(0)!r} is not in its source")
    for name in _CAPITALISED.findall(sentence):
        if name.lower() not in source_words and not any(name.lower() in f for f in found):
            found.append(f"{name!r} is not in the sources")
    if _negated(sentence) and not _negation_matches(sentence, passage):
        found.append("negated where its source is not")
    elif not _negated(sentence) and _denies(passage, set(_content(sentence))):
        found.append("its source says the opposite (not)")
    return found




def _numbers(text: str) -> set[tuple[str, str]]:
    text = re.sub(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b(?!-)", lambda m: _NUMBER_WORDS[m.group(1).lower()], text,
                  flags=re.I)
    found = set()
    for currency, value, unit in _NUMBER.findall(text):
        value = value.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", value) else value.replace(",", ".")
        unit = (currency.strip() or unit or "").lower()
        found.add((value.rstrip("0").rstrip(".") if "." in value else value, stem(unit) if unit.isalpha() else unit))
    return found


def _negated(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower().replace("’", "'"))
    return any(w in _NEGATIONS or w.endswith("n't") for w in words)
