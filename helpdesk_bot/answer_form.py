"""What shape of answer a question asks for, and whether a reply has that shape.

A customer who asks how to do something needs the steps; one who asks for a limit or a price
needs the number with its unit; a yes/no question needs the yes or the no; a "who do I
contact" question needs the contact; an error needs its cause and its fix. The drafter uses
the kind to choose what to quote, and the confidence score checks the draft against it
(`answer_form` in confidence.py). Word lists, not a model, so the support team can predict them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal

from helpdesk_bot.text import reading_language

Kind = Literal["contact", "error", "quantity", "procedure", "location", "yes_no", "other"]


def _words(*phrases: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b", re.IGNORECASE)


# First match wins, in this order: "how do I contact billing" is a contact question, "how many
# seats" a quantity, "I get error 429, how do I fix it" an error.
_QUESTION_KINDS: tuple[tuple[Kind, re.Pattern], ...] = (
    ("contact", _words(r"who (?:do|should|can|could) (?:i|we) (?:contact|email|e-mail|call|write to|ask|talk to|reach)",
                       r"contact (?:details|info(?:rmation)?|address|person|number|email)", r"(?:email|e-mail) address",
                       r"phone number", r"(?:how|where) (?:do|can|should) (?:i|we) (?:contact|reach|email|call|write to)",
                       r"get in touch", r"who (?:is|handles|deals with)")),
    ("error", _words(r"errors?", r"error code", r"fails?", r"failing", r"failed", r"failure", r"crash(?:es|ed|ing)?",
                     r"(?:doesn't|does not|don't|do not|won't|will not|isn't|is not|not) (?:work|working|load|loading|"
                     r"sync|syncing|arrive|arriving|open|opening|show|showing|update|updating)",
                     r"can't|cannot|can not|unable to", r"broken", r"too many requests",
                     r"[45]\d\d(?:s|\s+errors?|\s+responses?|\s+status)", r"(?:http|status|error|code)\s*[45]\d\d")),
    ("quantity", _words(r"how (?:many|much|long|often|big|large|fast|soon)", r"what(?:'s| is| are) the (?:\w+ )?"
                        r"(?:limit|limits|price|prices|cost|costs|fee|fees|maximum|minimum|max|min|size|quota|rate)",
                        r"limits?", r"pric(?:e|es|ing)", r"costs?", r"fees?", r"quotas?",
                        r"per (?:month|minute|hour|day|year|seat|user)", r"rate limits?")),
    ("procedure", _words(r"how (?:do|can|should|would|could|shall) (?:i|we)", r"how does one", r"how to",
                         r"(?:the|what|which) steps", r"steps to", r"what do (?:i|we) (?:do|need to do) to",
                         r"walk me through", r"instructions", r"is there a way to", r"process (?:for|to|of)")),
    ("location", _words(r"where (?:do|can|is|are|should|would|will|to)", r"which (?:page|menu|tab|screen|setting)",
                        r"find (?:the|my|our)")),
    ("yes_no", re.compile(r"^\W*(?:can|could|is|are|do|does|did|will|would|should|may|has|have|am|was|were)\b"
                          r"|\b(?:is it possible|am i able|are we able|is there)\b", re.IGNORECASE | re.MULTILINE)),
)

_ASKING_FOR: dict[Kind, re.Pattern] = dict(_QUESTION_KINDS)

# The same kinds in the other languages the bot answers (es, de, fr, pt, it, nl), checked with the
# English ones in the same order for a ticket read in another language. A question word at the start ("¿Cómo…", "Wie…", "Comment…")
# asks how to do something, as "how do I" does.
_QUESTION_KINDS_ELSEWHERE: dict[Kind, re.Pattern] = {
    "contact": _words(r"a qui[eé]n (?:contacto|escribo|llamo)", r"c[oó]mo (?:contacto|contactar|me pongo en contacto)",
                      r"an wen (?:wende|kann) ich mich", r"wie (?:erreiche|kontaktiere) ich", r"qui (?:contacter|dois-je contacter)",
                      r"comment (?:contacter|joindre)", r"(?:a )?quem (?:contacto|devo contactar)", r"como (?:contacto|contactar|falo com)",
                      r"chi (?:contatto|devo contattare)", r"come (?:contatto|contattare)", r"wie (?:moet|kan) ik (?:contacteren|bereiken)",
                      r"hoe (?:neem ik contact|bereik ik)"),
    "error": _words(r"errores?", r"fallos?", r"falla", r"no funciona", r"fehler(?:meldung)?", r"funktioniert nicht",
                    r"st[üu]rzt ab", r"erreurs?", r"ne (?:marche|fonctionne) (?:pas|plus)", r"plante", r"erros?",
                    r"n[aã]o funciona", r"errori?", r"non funziona", r"si blocca", r"foutmelding", r"fout", r"werkt niet",
                    r"crasht"),
    "quantity": _words(r"cu[aá]nt[oa]s?", r"cu[aá]l es el (?:l[ií]mite|precio|coste|costo|m[aá]ximo|tama[ñn]o)",
                       r"wie (?:viele?|lange|hoch|gro[ßs]|oft|teuer)", r"was kostet", r"combien", r"quel(?:le)? est (?:la|le) "
                       r"(?:limite|prix|co[uû]t|taille|maximum)", r"quant[oa]s?", r"qual [eé] o (?:limite|pre[cç]o|custo|tamanho)",
                       r"quanti", r"qual è il (?:limite|prezzo|costo)", r"hoeveel", r"hoe (?:lang|vaak|groot|duur)",
                       r"l[ií]mites?", r"precios?", r"limits?", r"preis(?:e)?", r"kosten", r"prix", r"tarifs?", r"pre[cç]os?",
                       r"limiti", r"prezz[oi]", r"limieten?", r"prijs(?:zen)?"),
    "procedure": re.compile(r"^\W*(?:c[oó]mo|wie|comment|como|come|hoe)\b|\b(?:c[oó]mo (?:puedo|podemos|se|hago|hacemos)|"
                            r"wie (?:kann|k[öo]nnen|muss|m[üu]ssen) (?:ich|wir|man)|comment (?:puis-je|pouvons-nous|faire)|"
                            r"como (?:posso|podemos|fa[cç]o)|come (?:posso|possiamo|faccio)|hoe (?:kan|kunnen|moet) (?:ik|we|je))\b",
                            re.IGNORECASE | re.MULTILINE),
    "location": _words(r"d[oó]nde", r"wo (?:finde|kann|ist|sind)", r"wo\b", r"o[uù] (?:trouver|est|sont|puis-je)", r"onde",
                       r"dove", r"waar"),
    "yes_no": re.compile(r"^\W*(?:puedo|podemos|se puede|es posible|hay|kann|k[öo]nnen|gibt es|ist es m[öo]glich|"
                         r"puis-je|pouvons-nous|est-ce que|est-il possible|y a-t-il|posso|podemos|[eé] poss[ií]vel|"
                         r"possiamo|[eè] possibile|c'è|kan ik|kunnen we|is het mogelijk|is er)\b", re.IGNORECASE | re.MULTILINE),
}

_STEP = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)
_INSTRUCTION = _words(r"click", r"tap", r"open", r"go to", r"select", r"choose", r"press", r"enter", r"type",
                      r"turn on", r"turn off", r"enable", r"disable", r"download", r"install", r"sign in",
                      r"navigate", r"run", r"set", r"try", r"check", r"restore", r"reset", r"adjust", r"change",
                      r"connect", r"configure", r"update", r"add", r"remove", r"save", r"follow", r"use",
                      # The same in the other languages replies are drafted in (language.py), as help
                      # centers write them: the imperative ("öffne", "cliquez") and the infinitive
                      # ("peut ouvrir ⋯ → Exporter"). Words that also mean something else in another
                      # of them ("entre", "entra") are left out.
                      r"haz clic", r"pulsa", r"abre", r"abrir", r"ve a", r"selecciona", r"seleccionar", r"elige",
                      r"introduce", r"escribe", r"activa", r"desactiva", r"descarga", r"instala", r"configura",
                      r"a[ñn]ade", r"guarda",
                      r"klicke", r"klicken sie", r"tippe", r"[öo]ffne", r"[öo]ffnen sie", r"gehe zu", r"w[äa]hle",
                      r"w[äa]hlen sie", r"gib", r"aktiviere", r"deaktiviere", r"lade", r"installiere", r"speichere",
                      r"f[üu]ge", r"verwende",
                      r"cliquez", r"cliquer", r"touchez", r"ouvrez", r"ouvrir", r"allez dans", r"s[ée]lectionnez",
                      r"s[ée]lectionner", r"choisissez", r"saisissez", r"activez", r"d[ée]sactivez", r"t[ée]l[ée]chargez",
                      r"installez", r"configurez", r"ajoutez", r"enregistrez", r"utilisez",
                      r"clique", r"toque", r"abra", r"v[áa] para", r"selecione", r"escolha", r"digite", r"insira",
                      r"ative", r"desative", r"baixe", r"instale", r"adicione", r"salve",
                      r"fai clic", r"clicca", r"tocca", r"apri", r"vai a", r"seleziona", r"scegli", r"inserisci",
                      r"attiva", r"disattiva", r"scarica", r"installa", r"aggiungi", r"salva",
                      r"klik", r"tik", r"ga naar", r"selecteer", r"kies", r"typ", r"schakel", r"installeer",
                      r"voeg", r"gebruik")
# Advice in prose, as a forum answer or a paragraph gives it: "you can ...", "first, ...".
_ADVICE = _words(r"you", r"first,", r"make sure", r"to do (?:this|that|so),",
                 r"(?:is|would be) the (?:best|easiest|simplest|quickest|cheapest|only|standard) (?:way|option)")
_PATH = re.compile(r"[→›»]|\s>\s")
_NUMBER = re.compile(r"(?<![\w.])[$€£]?\d[\d,.]*\s*%?")
_UNIT = _words(r"per", r"minutes?", r"hours?", r"days?", r"weeks?", r"months?", r"years?", r"seconds?", r"[kmgt]b",
               r"bytes?", r"requests?", r"seats?", r"members?", r"users?", r"runs?", r"calls?", r"files?", r"tasks?",
               r"projects?", r"guests?", r"times?", r"characters?", r"items?", r"usd", r"eur", r"gbp", r"dollars?",
               r"euros?", r"pounds?", r"percent")
_DURATION = re.compile(r"(?i)\b\d[\d,.]*(?:\s*[–-]\s*\d[\d,.]*)?[\s-]*(?:(?:business|working|calendar)\s+)?"
                       r"(?:seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|"
                       r"segundos?|minutos?|horas?|d[ií]as?|semanas?|meses|mes|años?|"
                       r"sekunden|minuten|stunden|tage?n?|wochen?|monate?n?|jahre?n?|"
                       r"secondes?|heures?|jours?|semaines?|mois|ans|années?|"
                       r"secondi|minuti|ore|giorni|settimane|mesi|anni|"
                       r"seconden|minuten|uur|dagen|weken|maanden|jaar)\b")
# "How long", "combien de temps": the question word, and the word after it that asks for a length of time.
_TIME_ASKED = {"how": "long|soon", "combien de": "temps", "cu[aá]nto": "tiempo", "wie": "lange", "quanto": "tempo",
               "hoe": "lang"}
_ASKS_DURATION = _words(*(f"{asking} (?:{words})" for asking, words in _TIME_ASKED.items()))
# The words that only say what is asked, which the answer does not hold: "long" in "how long is the
# trial?" asks for a number of days, "happens" in "what happens" for what follows.
_ASKING_WORDS = re.compile("|".join(rf"(?<=\b{asking} )(?:{words})\b" for asking, words in
                                    {**_TIME_ASKED, "how": "long|soon|often|big|large|fast|far|old"}.items())
                           + r"|(?<=\bwhat )happen(?=s?\b)", re.IGNORECASE)
_CURRENCY_OR_PERCENT = re.compile(r"[$€£]\s?\d|\d\s?%")
# A way to reach someone: an address, a link, a phone number or a named channel ("live chat"),
# not the bare word "contact" ("the Owner is the default billing contact").
_CONTACT = re.compile(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b|\bhttps?://\S+|(?:\+|\b00)\d[\d\s().-]{6,}\d"
                      r"|\b(?:contact form|live chat|chat with us|call us|email us|write to us|account manager|"
                      r"support portal|submit a (?:request|ticket))\b")
_EXPLICIT = _words(r"yes", r"no", r"can", r"cannot", r"can't", r"can not", r"is not", r"isn't", r"are not", r"aren't",
                   r"does not", r"doesn't", r"do not", r"don't", r"will", r"won't", r"only", r"never", r"always",
                   r"must", r"available", r"not available", r"supported", r"not supported", r"included", r"allowed",
                   r"possible", r"requires?", r"needs? to")
_CAUSE = _words(r"because", r"means", r"due to", r"caused by", r"happens when", r"when", r"if", r"exceed(?:s|ed)?",
                r"reached", r"returns?", r"limit", r"expired?", r"blocked", r"so that", r"since", r"after")
_FIX = _words(r"wait", r"try", r"retry", r"check", r"make sure", r"ensure", r"click", r"open", r"go to", r"update",
              r"reinstall", r"restart", r"sign out", r"sign in", r"reset", r"turn on", r"turn off", r"enable",
              r"disable", r"use", r"contact", r"allow", r"remove", r"reconnect", r"set")


def has_duration(text: str) -> bool:
    """Whether the text gives a length of time: "14 days", "a 14-day trial", "5–10 business days"."""
    return bool(_DURATION.search(_STEP.sub("", text)))


def has_contact(text: str) -> bool:
    """Whether the text gives a way to reach someone: an address, a link, a phone number, a named channel."""
    return bool(_CONTACT.search(text))


def has_quantity(text: str) -> bool:
    """Whether the text gives a number with its unit ("14 days", "$8", "600 requests per minute");
    a step's own number ("2. Invite up to 5 members") is not one."""
    text = _STEP.sub("", text)
    return bool(_NUMBER.search(text) and (_UNIT.search(text) or _CURRENCY_OR_PERCENT.search(text)))


def asks(kind: Kind, question: str) -> bool:
    """Whether the question asks (among other things) for an answer of this kind."""
    elsewhere = reading_language() != "en"  # a ticket in another language (text.reading): its words too
    return bool(_ASKING_FOR[kind].search(question) or (elsewhere and _QUESTION_KINDS_ELSEWHERE[kind].search(question)))


def asking_words(question: str) -> list[str]:
    """The question's words that say what it asks, not what about: "long" in "How long is the trial?"."""
    return _ASKING_WORDS.findall(question)


def gives_the_number(question: str) -> Callable[[str], bool]:
    """The test for a line that gives the number the question asks for: a duration for "how long"
    ("free for 14 days", not "10,000 automation runs"), otherwise any number with its unit."""
    return has_duration if _ASKS_DURATION.search(question) else has_quantity


def question_kind(question: str) -> Kind:
    """The shape of answer the question asks for.

    A question asking how to do something and for a number ("How do we download it, and how long
    will the link work?") asks for the steps: the drafter adds the number to them (`asks`).
    """
    kinds = [kind for kind, _ in _QUESTION_KINDS if asks(kind, question)]
    if kinds[:2] == ["quantity", "procedure"] and asks("procedure", _besides("quantity", question)):
        return "procedure"  # not "Wie lange…": its "Wie" is the number's question word
    return kinds[0] if kinds else "other"


def _besides(kind: Kind, question: str) -> str:
    """The question without the words that ask for an answer of this kind."""
    question = _ASKING_FOR[kind].sub(" ", question)
    return _QUESTION_KINDS_ELSEWHERE[kind].sub(" ", question) if reading_language() != "en" else question


@dataclass(frozen=True)
class FormCheck:
    value: float  # 0..1: how well the reply has the shape the question asks for
    detail: str


def check_answer(question: str, reply: str) -> FormCheck:
    """Whether `reply` has the shape `question` asks for; steps asked for with a number ("how do
    we download it, and how long will the link work?") need the number too."""
    kind = question_kind(question)
    found = check_form(kind, reply)
    if kind == "procedure" and found.value and asks("quantity", question) and not has_quantity(reply):
        return FormCheck(min(found.value, 0.5), f"{found.detail}, but not the number asked for")
    if kind == "quantity" and found.value == 1.0 and not gives_the_number(question)(reply):
        return FormCheck(0.5, "asks how long; the reply gives a number but no length of time")
    return found


def check_form(kind: Kind, reply: str) -> FormCheck:
    """Whether `reply` (plain text, as drafted) has the shape a question of `kind` asks for."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n", reply) if s.strip()]
    if not sentences:
        return FormCheck(0.0, "the reply is empty")
    steps = len(_STEP.findall(reply))
    # A question quoted back ("How can I change the language?", a troubleshooting table's left
    # column) asks for an instruction; it gives none.
    stated = " ".join(s for s in sentences if not s.rstrip().endswith("?"))
    instructions = bool(_INSTRUCTION.search(stated)) and (bool(_PATH.search(stated)) or len(_INSTRUCTION.findall(stated)) >= 2)
    if kind == "procedure":
        if steps >= 2:
            return FormCheck(1.0, f"asks how to do something; the reply gives {steps} steps")
        if instructions:  # "open Settings → Security → Two-factor authentication and click Enable"
            return FormCheck(1.0, "asks how to do something; the reply gives the instructions")
        if _ADVICE.search(reply):
            return FormCheck(0.6, "asks how to do something; the reply gives advice but no instructions")
        return FormCheck(0.0, "asks how to do something; the reply gives no steps or instructions")
    if kind == "quantity":
        # By paragraph, not sentence: a table's unit is in its header, a limit's in "Requests per minute: 600".
        paragraphs = [p for p in re.split(r"\n\s*\n", reply) if p.strip()]
        with_unit = [p for p in paragraphs if _NUMBER.search(p) and (_UNIT.search(p) or _CURRENCY_OR_PERCENT.search(p))]
        if with_unit:
            example = " ".join(with_unit[0].split())[:50]
            return FormCheck(1.0, f"asks for a limit or a price; the reply gives a number with its unit ({example!r})")
        if any(_NUMBER.search(s) for s in sentences):
            return FormCheck(0.5, "asks for a limit or a price; the reply gives a number but no unit")
        return FormCheck(0.0, "asks for a limit or a price; the reply gives no number")
    if kind == "contact":
        if _CONTACT.search(reply):
            return FormCheck(1.0, "asks whom to contact; the reply gives a contact")
        return FormCheck(0.0, "asks whom to contact; the reply gives no contact")
    if kind == "error":
        cause, fix = bool(_CAUSE.search(reply)), bool(_FIX.search(reply)) or steps >= 2
        if cause and fix:
            return FormCheck(1.0, "reports an error; the reply gives a cause and a fix")
        if cause or fix:
            return FormCheck(0.5, f"reports an error; the reply gives a {'cause' if cause else 'fix'} only")
        return FormCheck(0.0, "reports an error; the reply gives neither a cause nor a fix")
    if kind == "location":
        if steps >= 2 or _PATH.search(reply) or instructions or _CONTACT.search(reply):
            return FormCheck(1.0, "asks where; the reply gives the place or the steps")
        return FormCheck(0.3, "asks where; the reply names no place, menu or link")
    if kind == "yes_no":
        if _EXPLICIT.search(reply):
            return FormCheck(1.0, "asks a yes/no question; the reply makes an explicit statement")
        return FormCheck(0.5, "asks a yes/no question; the reply makes no explicit statement")
    return FormCheck(1.0, "no particular shape of answer expected")
