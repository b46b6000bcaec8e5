"""The language of a ticket, and what the bot says in each language it writes.

A ticket's language is, in this order: the one set explicitly (`ask --locale`), the requester's
locale as the helpdesk has it (Zendesk user `locale`, Intercom contact language), or the
language of what the customer wrote, detected with py3langid among the catalogue's languages.
Text too short to tell is read in the help center's default language.

The catalogue holds the few phrases the bot writes around what it quotes: the greeting, the
lead-in naming the article, "Sources:". Everything else in a reply comes from the articles.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace

from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from helpdesk_bot.domain import Ticket, locale_language

DEFAULT_LANGUAGE = "en"

# The languages the bot writes in: their English name (for agents' notes and the dashboard).
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "de": "German", "fr": "French", "pt": "Portuguese",
                  "it": "Italian", "nl": "Dutch"}

# Below this probability, or with fewer words than this, detection guesses: the default is used.
_MIN_PROBABILITY = 0.8
_MIN_LETTERS = 12


@dataclass(frozen=True)
class Phrases:
    greeting: str  # "{name}" is the requester's first name
    greeting_anonymous: str
    sources: str
    from_article: str  # "{title}" is the article's title
    steps_from_article: str
    our_help_center: str
    earlier_answer: str  # a past ticket, never named to the customer
    also_from: str  # before a second quote: "Also, from"
    same_article: str  # a second quote from the article of the first


CATALOGUE: dict[str, Phrases] = {
    "en": Phrases("Hi {name},", "Hi,", "Sources:", "our article “{title}”", "Here are the steps, from",
                  "our help center", "an earlier answer from our support team", "Also, from", "the same article"),
    "es": Phrases("Hola, {name}:", "Hola:", "Fuentes:", "nuestro artículo «{title}»", "Estos son los pasos, de",
                  "nuestro centro de ayuda", "una respuesta anterior de nuestro equipo de soporte", "Además, de",
                  "ese mismo artículo"),
    "de": Phrases("Hallo {name},", "Hallo,", "Quellen:", "unserem Artikel „{title}“", "Hier sind die Schritte, aus",
                  "unserem Hilfe-Center", "einer früheren Antwort unseres Support-Teams", "Außerdem aus",
                  "demselben Artikel"),
    "fr": Phrases("Bonjour {name},", "Bonjour,", "Sources :", "notre article « {title} »", "Voici les étapes, d’après",
                  "notre centre d’aide", "une réponse précédente de notre équipe d’assistance", "Et d’après",
                  "le même article"),
    "pt": Phrases("Olá, {name},", "Olá,", "Fontes:", "o nosso artigo “{title}”", "Estes são os passos, segundo",
                  "a nossa central de ajuda", "uma resposta anterior da nossa equipa de suporte", "Também, segundo",
                  "o mesmo artigo"),
    "it": Phrases("Ciao {name},", "Ciao,", "Fonti:", "nostro articolo «{title}»", "Ecco i passaggi, dal",
                  "nostro centro assistenza", "nostro team di assistenza, da una risposta precedente", "Inoltre, dal",
                  "medesimo articolo"),
    "nl": Phrases("Hallo {name},", "Hallo,", "Bronnen:", "ons artikel ‘{title}’", "Dit zijn de stappen, uit",
                  "ons helpcentrum", "een eerder antwoord van ons supportteam", "Ook uit", "hetzelfde artikel"),
}
# "From …:" for a quote that is not a procedure; the steps' lead-in above ends in its own preposition.
FROM = {"en": "From", "es": "De", "de": "Aus", "fr": "D’après", "pt": "Segundo", "it": "Dal", "nl": "Uit"}


def phrases(language: str | None) -> Phrases:
    """The catalogue's phrases for `language`; English for a language it does not hold."""
    return CATALOGUE.get(language or DEFAULT_LANGUAGE, CATALOGUE[DEFAULT_LANGUAGE])


def language_name(language: str | None) -> str:
    return LANGUAGE_NAMES.get(language or "", language or "unknown")


def lead_in(language: str | None, title: str | None, steps: bool, past_ticket: bool = False,
            second: bool = False, same_article: bool = False) -> str:
    """"From our article “Refunds” [1]:" in `language`: the line that names where a quote comes from;
    `second`: "Also, from … [2]:" before a second quote (`same_article`: from the first's article)."""
    words = phrases(language)
    where = (words.same_article if same_article else words.earlier_answer if past_ticket
             else words.from_article.format(title=title) if title else words.our_help_center)
    if second:
        return f"{words.also_from} {where} [2]:"
    start = words.steps_from_article if steps else FROM.get(language or "", FROM[DEFAULT_LANGUAGE])
    return f"{start} {where} [1]:"


def _lead_in_pattern() -> re.Pattern:
    """Any language's lead-in, the article's title in the group `title`."""
    alternatives = []
    for code, words in CATALOGUE.items():
        starts = "|".join(re.escape(s) for s in (words.steps_from_article, FROM[code], words.also_from))
        before, _, after = words.from_article.partition("{title}")
        wheres = "|".join([f"{re.escape(before)}(?P<title_{code}>[^\n]*?){re.escape(after)}",
                           re.escape(words.our_help_center), re.escape(words.earlier_answer),
                           re.escape(words.same_article)])
        alternatives.append(f"(?:{starts}) (?:{wheres})")
    return re.compile(rf"^(?:{'|'.join(alternatives)})(?: ?\[\d+\])?\s*:\n*", re.MULTILINE)


LEAD_IN = _lead_in_pattern()


def lead_in_title(match: re.Match) -> str:
    """The article title a `LEAD_IN` match names ("" for the help center or a past ticket)."""
    return next((value for key, value in match.groupdict().items() if key.startswith("title_") and value), "")


class LanguageDetector:
    """py3langid's Naive Bayes model, restricted to the catalogue's languages: 0.05 ms a ticket."""

    def __init__(self, languages: tuple[str, ...] = tuple(LANGUAGE_NAMES)):
        self.languages = languages
        self._lock = threading.Lock()
        self._identifier: LanguageIdentifier | None = None

    def _model(self) -> LanguageIdentifier:
        with self._lock:  # loading takes ~0.4 s: once, on first use, not at import
            if self._identifier is None:
                identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
                identifier.set_languages(list(self.languages))
                self._identifier = identifier
            return self._identifier

    def detect(self, text: str, default: str = DEFAULT_LANGUAGE) -> str:
        """The language `text` is written in; `default` when it is too short or too unsure to tell."""
        if sum(c.isalpha() for c in text) < _MIN_LETTERS:
            return default
        language, probability = self._model().classify(text)
        return language if probability >= _MIN_PROBABILITY else default


DETECTOR = LanguageDetector()


def ticket_language(ticket: Ticket, default: str = DEFAULT_LANGUAGE, detector: LanguageDetector = DETECTOR) -> str:
    """The language to answer `ticket` in: set explicitly, the requester's locale, or detected."""
    if ticket.language:
        return ticket.language
    from_locale = locale_language(ticket.locale)
    if from_locale:
        return from_locale
    written = "\n".join([ticket.subject, *(m.text for m in ticket.customer_messages)])
    return detector.detect(written, default)


def with_language(ticket: Ticket, default: str = DEFAULT_LANGUAGE) -> Ticket:
    """The ticket with its language settled, so every later stage reads the same one."""
    return ticket if ticket.language else replace(ticket, language=ticket_language(ticket, default))
