"""Redaction of personal data and secrets before text leaves for the LLM, the index, the logs
or Sentry.

Each kind is found by the kept library that knows its rules, and replaced by a placeholder
naming it (`PLACEHOLDERS`):

- e-mail addresses, Unicode and IDN ones included (`jürgen@bücher.de`), and "name at domain dot com";
- phone numbers of every region, by `phonenumbers`: a number written with separators, a
  trunk 0 or an international prefix is taken when it is valid in one of the common regions
  (`COMMON_REGIONS`, with `PhoneNumberMatcher` for a number inside a longer run), and any
  region's number when a phone label ("call me on", "móvil", "Handy") introduces it;
- payment card numbers that pass the Luhn check, whatever separates the digits, with a known
  card prefix;
- IBANs and national ids (US SSN, French NIR, Spanish DNI/NIE, Italian codice fiscale, Brazilian
  CPF; Dutch BSN, German tax id, Canadian SIN, Indian Aadhaar, UK NINO when labelled), checked
  by `python-stdnum`;
- dates of birth, when labelled as such;
- API keys and tokens in the formats vendors publish, private-key blocks, JWTs, Bearer tokens,
  and passwords given in English, Spanish, French, German, Portuguese, Italian or Dutch.

Checksums, card prefixes and labels keep order, tracking and receipt numbers, git SHAs, digests,
trace ids and dates out of the net. Recall by kind and the share of near misses redacted are
measured on tests/data/pii_corpus.jsonl (tests/test_redaction.py); the time per ticket by
`python -m benchmarks redaction`.

Street addresses are not redacted: without a gazetteer the free-text forms miss more than they
find, and an address alone identifies less than the kinds above.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher
from stdnum import iban as stdnum_iban
from stdnum.iso7064 import mod_97_10
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import ssn

# Earlier kinds win where spans overlap.
KINDS = ("SECRET", "EMAIL", "IBAN", "CARD", "NATIONAL_ID", "BIRTH_DATE", "PHONE")
PLACEHOLDERS = {kind: f"[{kind.lower()}]" for kind in KINDS}
# Any placeholder in text: a draft that carries one was written from redacted words.
PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS.values()))


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str

    def text(self, source: str) -> str:
        return source[self.start:self.end]


# --- secrets ---------------------------------------------------------------------------------------

_SECRET_PATTERNS = [re.compile(p) for p in (
    r"\bsk-(?:proj-|live-|test-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{16,}",  # OpenAI, Anthropic
    r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|\bwhsec_[A-Za-z0-9]{20,}",  # Stripe
    r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",  # SendGrid
    r"\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}",  # GitHub, fine-grained included
    r"\bglpat-[A-Za-z0-9_-]{20,}",  # GitLab
    r"\bxox[abposre]-[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"(?:https://)?\bhooks\.slack\.com/services/[A-Za-z0-9/]{20,}",  # Slack incoming webhook
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bAIza[0-9A-Za-z_-]{35}",  # Google API key
    r"\bya29\.[0-9A-Za-z_-]{20,}",  # Google OAuth access token
    r"\b(?:key|pat|shpat|shpss|npm)_[A-Za-z0-9]{24,}",  # Mailgun-, Shopify-, npm-style keys
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
    r"-----BEGIN [A-Z ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]{40,}",  # a block pasted without its end line
    r"(?i)(?<=\bbearer )[A-Za-z0-9._~+/=-]{12,}",
    r"(?i)(?<=\bbasic )[A-Za-z0-9+/]{16,}={0,2}",
    r"(?i)(?<=://)[^\s:/@]+:[^\s:/@]+(?=@)",  # user:password in a URL
)]

# A secret's name, then `:`, `=` or "is" in the languages the handover phrases cover, then its value.
_SECRET_NAMES = (
    r"api[_ -]?key|apikey|access[_ -]?key|secret(?:[_ -]?key)?|client[_ -]?secret|private[_ -]?key|"
    r"(?:access|auth|bearer|refresh|api|session|personal access)[_ -]?token|token|"
    r"password|passwd|pwd|pw|passcode|passphrase|pass|pin code|"
    r"contraseña|contrasena|clave(?: de acceso)?|mot de passe|mdp|passwort|kennwort|senha|"
    r"parola d'ordine|parola chiave|wachtwoord|code secret|geheimcode")
_IS = (r"(?:[:=]|\b(?:is|was|es|era|est|c'est|ist|lautet|war|é|e|è|luidt|(?:set |changed )?to)"
       r"(?: now| still| jetzt| nu| agora| ahora| maintenant)?\b)")
_NAMED_SECRET = re.compile(
    rf"""(?i)(?<![\w-])(?:{_SECRET_NAMES})(?![\w-])["']?(?:\s+\w+){{0,2}}?\s*(?P<is>{_IS})\s*"""
    rf"""(?:["'“‘«](?P<quoted>[^"'”’»\n]{{3,80}})["'”’»]|(?P<value>[^\s"',;]{{4,}}))""")
# Words that follow "password is" in a complaint, not a password: "my password is not working".
_NOT_A_SECRET = frozenset("""
    not no wrong incorrect invalid expired too being the a an still correct fine ok okay required missing empty
    saved reset changed blank case being rejected accepted locked blocked correctly right same different new old
    never always now weak strong long short definitely sent stored shown visible hidden working broken there
    nicht falsch ungültig abgelaufen korrekt richtig gesperrt immer noch neu kein keine
    pas incorrect incorrecte invalide expiré correct bon bloqué toujours nouveau vide
    incorrecta incorrecto inválida válida caducada correcta bloqueada siempre nueva vacía
    errada errado inválida expirada correta bloqueada sempre nova vazia
    sbagliata errata scaduta corretta bloccata sempre nuova vuota
    onjuist fout verlopen ongeldig correct geblokkeerd altijd nieuw leeg
    """.split())
_LONG_TOKEN = re.compile(r"(?<![\w/.-])[A-Za-z0-9_\-+/]{28,}={0,2}(?![\w/.-])")


def _secrets(text: str) -> list[Span]:
    spans = [Span(m.start(), m.end(), "SECRET") for pattern in _SECRET_PATTERNS for m in pattern.finditer(text)]
    for m in _NAMED_SECRET.finditer(text):
        group = "quoted" if m.group("quoted") else "value"
        value = m.group(group)
        if group == "value":
            value = value[:-1] if value[-1] in ".,;)" else value  # the sentence's full stop, not the password's
            plain_word = value.isalpha() and value.islower()
            if value.lower() in _NOT_A_SECRET or (m.group("is").endswith("to") and plain_word):
                continue
        spans.append(Span(m.start(group), m.start(group) + len(value), "SECRET"))
    spans += [Span(m.start(), m.end(), "SECRET") for m in _LONG_TOKEN.finditer(text) if _looks_random(m.group(0))]
    return spans


def _looks_random(token: str) -> bool:
    """A long token mixing lower case, upper case and digits with high entropy: a key.

    Hex alone is not enough: git SHAs, sha256 digests and trace ids are hex, and customers
    paste them to help. A hex key is caught when it is named ("api key: ...").
    """
    classes = sum(bool(re.search(p, token)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    if classes < 3:
        return False
    if re.search(r"[a-z]{6,}", token) and token.count("-") >= 2:  # a slug: "360001-Resetting-your-password"
        return False
    counts = Counter(token)
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return entropy >= 3.5


# --- e-mail addresses ------------------------------------------------------------------------------

# RFC 6531 allows any Unicode letter in the local part and IDNA any in the domain; \w is Unicode.
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.!#$%&'*+/=?^`{|}~-]*\w(?:\s+dot\s+\w+)*(?:@|\s?[(\[]at[)\]]\s?|\s+at\s+(?=[\w-]+\s+dot\s))"
    r"(?:[\w-]+(?:\.|\s?[(\[]dot[)\]]\s?|\s+dot\s+))+(?:xn--[a-z0-9-]+|[^\W\d_]{2,})(?![\w-])", re.I)


# --- IBANs, cards, national ids, dates of birth ----------------------------------------------------

_IBAN = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d\w])\d(?:[ \u00a0.\-_/]{0,3}\d){12,18}(?![\d\w])")
# Card prefixes (IIN ranges) of the networks in use; a Luhn-valid number with another prefix
# is more likely a parcel or an order.
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|35|6011|64[4-9]|65|62|50|5[6-9]|6[0-9])")
_NOT_CARD_LABEL = re.compile(r"(?i)\b(tracking|track|parcel|shipment|order|receipt|invoice|reference|ref|transaction|"
                             r"txn|ticket|case|confirmation|booking|imei|serial|account id|customer id)\b[^\d\n]{0,20}$")

# Formats of national ids that are safe to take unlabelled; the rest need their label.
_NATIONAL_ID_FORMATS = (
    (re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), ssn.is_valid),
    (re.compile(r"(?<![\d.])\d{3}\.\d{3}\.\d{3}-\d{2}(?!\d)"), cpf.is_valid),
    (re.compile(r"(?i)\b\d{8}-?[A-Z]\b"), dni.is_valid),
    (re.compile(r"(?i)\b[XYZ]-?\d{7}-?[A-Z]\b"), nie.is_valid),
    (re.compile(r"(?i)\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b"), codicefiscale.is_valid),
    (re.compile(r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b"), nir.is_valid),
    (re.compile(r"(?i)\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"), lambda v: True),  # UK NINO
)
_NATIONAL_ID_LABEL = re.compile(
    r"(?i)\b(ssn|social security(?: number| no\.?)?|sin|social insurance|bsn|burgerservicenummer|"
    r"steuer-?id|steueridentifikationsnummer|identifikationsnummer|aadhaar|cpf|dni|nie|nif|nir|"
    r"numéro de sécurité sociale|codice fiscale|national insurance(?: number)?|nino|tax id|national id)"
    r"\b[^\d\n]{0,25}(?P<value>\d[\d \-.]{7,16}\d)")
_LABELLED_ID_CHECKS = (ssn.is_valid, sin.is_valid, bsn.is_valid, idnr.is_valid, aadhaar.is_valid, cpf.is_valid)

_MONTH_DATE = r"\d{1,2}(?:st|nd|rd|th|\.|º)?\s+(?:de\s+)?[^\W\d_]{3,10}\.?,?\s+(?:de\s+)?\d{4}"
_DATE = rf"(?:\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{2,4}}|{_MONTH_DATE}|[^\W\d_]{{3,10}}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
_BIRTH_DATE = re.compile(
    r"(?i)\b(?:date of birth|birth ?date|birthday|d\.?o\.?b\.?|born(?: on)?|fecha de nacimiento|nací el|nacido el|"
    r"nacida el|date de naissance|né le|née le|geburtsdatum|geboren am|geboren|data de nascimento|nasci em|"
    r"data di nascita|nato il|nata il|geboortedatum|geboren op)\b[^\d\n]{0,20}?(?P<value>" + _DATE + ")")


def _numbers(text: str) -> list[Span]:
    spans = [span for m in _IBAN.finditer(text) if (span := _iban_span(m))]
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if luhn_valid(digits) and _CARD_PREFIX.match(digits) and not _NOT_CARD_LABEL.search(text[max(0, m.start() - 40):m.start()]):
            spans.append(Span(m.start(), m.end(), "CARD"))
    for pattern, valid in _NATIONAL_ID_FORMATS:
        spans += [Span(m.start(), m.end(), "NATIONAL_ID") for m in pattern.finditer(text) if _checks(valid, m.group(0))]
    for m in _NATIONAL_ID_LABEL.finditer(text):
        if any(_checks(valid, m.group("value")) for valid in _LABELLED_ID_CHECKS):
            spans.append(Span(m.start("value"), m.end("value"), "NATIONAL_ID"))
    spans += [Span(m.start("value"), m.end("value"), "BIRTH_DATE") for m in _BIRTH_DATE.finditer(text)]
    return spans


def _checks(valid, value: str) -> bool:
    try:
        return bool(valid(value))
    except Exception:  # python-stdnum raises on some malformed input instead of answering False
        return False


# --- phone numbers ---------------------------------------------------------------------------------

# Regions whose national formats are matched without a label: where most customers write from.
# International numbers ("+44 …", "0049 …") are matched whatever the region.
COMMON_REGIONS = ("US", "GB", "FR", "DE", "ES", "IT", "NL", "BE", "PT", "BR", "MX", "IN", "CA", "AU", "IE", "CH",
                  "AT", "SE", "PL", "AR", "CO", "JP")
_OTHER_REGIONS = tuple(sorted(phonenumbers.SUPPORTED_REGIONS - set(COMMON_REGIONS)))
_PHONE_LABEL = re.compile(
    r"(?i)\b(phone|tel|telephone|mobile|cell|call(?: me)?|text(?: me)?|whatsapp|fax|sms|reach me|ring me|"
    r"(?:my|our|your|contact) number|móvil|movil|teléfono|telefono|llámame|llamar|portable|téléphone|telefone|"
    r"celular|contato|ligue|handy|telefon|rufnummer|anrufen|cellulare|chiamami|mobiel|bel me|bellen)\b[^\d\n]{0,20}$")
_NOT_PHONE_LABEL = re.compile(
    r"(?i)\b(tracking|track|parcel|shipment|order|receipt|invoice|reference|ref|transaction|txn|ticket|case|"
    r"confirmation|booking|imei|serial|version|build|id|iban|account|vat|tax|ust-?id|btw|iva|tva|siret|siren|"
    r"company|registration|pedido|commande|bestellung|rechnung|factura|"
    r"fattura|encomenda|bestelling)\b[^\d\n]{0,20}$")
_PHONE_CANDIDATE = re.compile(r"(?<![\w+./:-])(?:\+|00)?\(?\d[\d ().\u00a0/-]{5,20}\d(?![\w-]|[.:]\d)")
_SEPARATED = re.compile(r"[ ().\u00a0/-]")
_DATE_TIME_OR_ADDRESS = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}(?:$|[ T])|^\d{1,2}:\d{2}|^\d{1,3}(?:\.\d{1,3}){3}$|"
                                   r"^(?:19|20)\d\d ?[-–] ?(?:19|20)\d\d$")


def _phones(text: str) -> list[Span]:
    spans = []
    for m in _PHONE_CANDIDATE.finditer(text):
        candidate = m.group(0).rstrip(" .)(/-")
        if "(" in candidate and ")" not in candidate:
            candidate = candidate.lstrip("(")
        start = m.start() + m.group(0).find(candidate)
        before = text[max(0, start - 40):start]
        phone_label, other_label = _PHONE_LABEL.search(before), _NOT_PHONE_LABEL.search(before)
        if (other_label and not (phone_label and phone_label.start() > other_label.start())
                or _DATE_TIME_OR_ADDRESS.match(candidate)):
            continue
        labelled = bool(phone_label)
        found = _phone_in(candidate, labelled)
        if found:
            spans.append(Span(start + found[0], start + found[1], "PHONE"))
    return spans


def _phone_in(candidate: str, labelled: bool) -> tuple[int, int] | None:
    """Where in `candidate` `phonenumbers` finds a number: any region when labelled, else the common ones."""
    digits = sum(c.isdigit() for c in candidate)
    international = candidate.startswith(("+", "00"))
    formatted = international or bool(_SEPARATED.search(candidate.strip("()"))) or candidate.startswith("0")
    if not (7 <= digits <= 15) or not (labelled or (formatted and digits >= 8)):
        return None
    if candidate.startswith("00"):  # "0049 89 …": the international prefix most of the world dials
        found = _phone_in("+" + candidate[2:], labelled)
        return (found[0] + (found[0] > 0), found[1] + 1) if found else None
    regions = ("US",) if international else COMMON_REGIONS + (_OTHER_REGIONS if labelled else ())
    for region in regions:  # the whole candidate first: "(11) 91234-5678" is Brazilian, not Spanish "91234-5678"
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)):
                return 0, len(candidate)
        except phonenumbers.NumberParseException:
            return None
    for region in regions[:len(COMMON_REGIONS)]:  # then a number inside it, with words or digits around
        for match in PhoneNumberMatcher(candidate, region, leniency=Leniency.VALID):
            return match.start, match.end
    if labelled:  # a local number without its area code ("555-0199") is possible, never valid
        for region in COMMON_REGIONS:
            try:
                if phonenumbers.is_possible_number(phonenumbers.parse(candidate, region)):
                    return 0, len(candidate)
            except phonenumbers.NumberParseException:
                return None
    return None


# --- the redactor ----------------------------------------------------------------------------------


def find_pii(text: str) -> list[Span]:
    """Spans of personal data and secrets in `text`, without overlaps, in order."""
    if not text:
        return []
    candidates = _secrets(text)
    candidates += [Span(m.start(), m.end(), "EMAIL") for m in _EMAIL.finditer(text)]
    if any(c.isdigit() for c in text):
        candidates += _numbers(text) + _phones(text)
    return _without_overlaps(candidates)


def redact(text: str) -> str:
    """`text` with every span `find_pii` finds replaced by its kind's placeholder."""
    if not text:
        return text
    out, last = [], 0
    for span in find_pii(text):
        out += [text[last:span.start], PLACEHOLDERS[span.kind]]
        last = span.end
    return "".join(out) + text[last:]


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """The mod-97 checksum (python-stdnum), whatever the country's own rules on top of it say:
    an IBAN with a digit too many or a national check wrong is still someone's bank account."""
    compact = stdnum_iban.compact(candidate.replace("-", " "))
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    return mod_97_10.is_valid(compact[4:] + compact[:4])


def _iban_span(match: re.Match) -> Span | None:
    """The longest valid IBAN at the match's start: the pattern also swallows words after it."""
    candidate = match.group(0)
    while True:
        if iban_valid(candidate):
            return Span(match.start(), match.start() + len(candidate), "IBAN")
        if " " not in candidate.strip():
            return None
        candidate = candidate.rstrip().rsplit(" ", 1)[0]


def _without_overlaps(spans: list[Span]) -> list[Span]:
    rank = {kind: i for i, kind in enumerate(KINDS)}
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (rank[s.kind], s.start, -(s.end - s.start))):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


# --- logs (Sentry events: helpdesk_bot/scrubbing.py) ---------------------------------------------------------------------------

_previous_factory = None


def redact_log_records() -> None:
    """Redact every log record's message and traceback as it is created, whoever logs it."""
    global _previous_factory
    if _previous_factory is not None:
        return
    _previous_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = _previous_factory(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), ()
            if record.exc_info and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        except Exception:  # a log call must never fail because of redaction
            pass
        return record

    logging.setLogRecordFactory(factory)
