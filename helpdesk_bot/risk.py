"""Risk signals: ticket content that should hold the bot back whatever the knowledge says.

A ticket with a risk signal is handed to a human whatever the confidence and the threshold
(`decide` in policy.py): a refund, a disputed charge, a legal threat, an account takeover or a
cancellation is for a person to handle. Ops can let the bot answer a named signal on tickets
of a tag, explicitly (`allow_risks` on a policy rule). Patterns are deliberately plain (word
lists, not a model) so ops can read and predict them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helpdesk_bot.domain import Ticket


@dataclass(frozen=True)
class RiskSignal:
    name: str
    reason: str


def _words(*phrases: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b", re.IGNORECASE)


_LEAVING = r"(?:subscription|plan|account|membership|contract|renewal|service|workspace|trial)"
# (name, pattern, reason) in order of severity.
_CONTENT_SIGNALS = (
    ("legal", _words(r"lawyers?", r"attorneys?", r"lawsuit", r"sue", r"suing", r"legal action", r"court",
                     r"small claims", r"gdpr (?:request|complaint)", r"data protection authority"),
     "mentions legal action"),
    ("security", _words(r"hack(?:ed|er)?", r"compromised", r"account takeover", r"taken over", r"took over",
                        r"unauthori[sz]ed (?:access|login|charge)s?", r"someone (?:else )?(?:has )?(?:logged|signed) (?:in|into|on)",
                        r"someone (?:else )?(?:has )?(?:changed|reset) my (?:email|password|phone|2fa)", r"(?:it )?wasn'?t me",
                        r"phishing", r"stolen", r"breach", r"(?:locked|kicked) out of my account by"),
     "reports a security problem or account takeover"),
    ("billing_dispute", _words(r"chargeback", r"dispute (?:the|this|a) (?:charge|payment)", r"disputed?",
                               r"charged twice", r"double charged", r"fraud(?:ulent)?", r"report (?:you|this) to my bank",
                               r"didn'?t (?:authori[sz]e|agree to) (?:this|the|that) (?:charge|payment)"),
     "disputes a charge"),
    ("refund", _words(r"refunds?", r"refunded", r"money back", r"reimburse(?:ment)?"), "asks for money back"),
    ("cancellation", _words(rf"cancel\w*\s+(?:\w+\s+){{0,3}}{_LEAVING}s?", rf"{_LEAVING}s?\s+(?:\w+\s+){{0,2}}cancel\w*",
                            r"cancellation", r"close (?:my|our) account", r"delete (?:my|our) account",
                            r"delete (?:all )?(?:of )?(?:my|our) (?:\w+ )?data", r"(?:we are|we're) leaving",
                            r"terminate (?:my|our|the) (?:\w+\s+)?(?:contract|subscription|account)",
                            r"stop (?:my|our) subscription", r"unsubscribe from (?:the|your) (?:plan|service)"),
     "wants to cancel or leave"),
    ("angry", _words(r"unacceptable", r"ridiculous", r"outrageous", r"terrible", r"worst", r"disgusting",
                     r"furious", r"scam", r"useless", r"wtf", r"fed up", r"sick of"), "angry tone"),
    ("urgent", _words(r"urgent(?:ly)?", r"asap", r"immediately", r"right now", r"emergency", r"production is down",
                      r"critical"), "urgent tone"),
)
# The same signals in the other languages the bot answers (es, de, fr, pt, it, nl): whole words,
# so "piraté" (hacked) is one and a stem that happens to start another word is not.
_CONTENT_SIGNALS_ELSEWHERE = (
    ("legal", _words(r"abogad[oa]s?", r"demanda(?:r|ré)?", r"acciones legales", r"tribunal(?:es)?", r"denuncia",
                     r"anwalt", r"anwältin", r"rechtsanwalt", r"klage", r"verklagen", r"gericht", r"rechtliche schritte",
                     r"avocat", r"poursuites?", r"procès", r"tribunal", r"porter plainte", r"mise en demeure",
                     r"advogad[oa]", r"processar", r"processo judicial", r"a[cç][aã]o judicial",
                     r"avvocat[oa]", r"denuncia", r"fare causa", r"azioni legali", r"querela",
                     r"advocaat", r"rechtszaak", r"aanklagen", r"juridische stappen", r"rechter"),
     "mentions legal action"),
    ("security", _words(r"hackead[oa]", r"pirateada", r"me han robado la cuenta", r"acceso no autorizado",
                        r"alguien (?:entró|ha entrado|accedió) (?:a|en) mi cuenta",
                        r"gehackt", r"kompromittiert", r"unbefugte[rn]? zugriff", r"jemand hat sich (?:in|bei) meinem konto",
                        r"piraté", r"piratée", r"piratage", r"compte compromis", r"accès non autorisé", r"usurpation",
                        r"hackead[oa]", r"invadid[oa]", r"acesso não autorizado",
                        r"hackerat[oa]", r"account violato", r"accesso non autorizzato",
                        r"gehackt", r"ongeautoriseerde toegang", r"iemand heeft ingelogd"),
     "reports a security problem or account takeover"),
    ("billing_dispute", _words(r"contracargo", r"cobrad[oa] dos veces", r"cargo duplicado", r"fraude",
                               r"rückbuchung", r"doppelt (?:belastet|abgebucht)", r"betrug",
                               r"rétrofacturation", r"débité deux fois", r"contest(?:er|e) (?:le|ce) prélèvement",
                               r"estorno", r"cobrad[oa] duas vezes", r"fraude",
                               r"addebitat[oa] due volte", r"frode", r"contestazione",
                               r"terugboeking", r"dubbel (?:afgeschreven|betaald)", r"fraude"),
     "disputes a charge"),
    ("refund", _words(r"reembolsos?", r"devolución del dinero", r"devuélvanme", r"rückerstattung", r"erstattung",
                      r"geld zurück", r"rembourse\w*", r"reembolso", r"devolução", r"rimbors\w*", r"restituzione",
                      r"terugbetaling", r"geld terug"),
     "asks for money back"),
    ("cancellation", _words(r"cancelar (?:mi|la|nuestra) (?:suscripción|cuenta|plan)", r"darme de baja", r"baja de la cuenta",
                            r"kündigen", r"kündigung", r"konto löschen", r"abo beenden",
                            r"résilier", r"résiliation", r"annuler (?:mon|notre) abonnement", r"supprimer (?:mon|notre) compte",
                            r"cancelar (?:a|minha|nossa) (?:assinatura|conta)", r"encerrar (?:a|minha) conta",
                            r"disdire", r"disdetta", r"annullare (?:l'|il |il mio )?abbonamento", r"cancellare (?:il mio )?account",
                            r"opzeggen", r"abonnement (?:stopzetten|beëindigen)", r"account verwijderen"),
     "wants to cancel or leave"),
    ("angry", _words(r"inaceptable", r"vergonzoso", r"estafa", r"indignante", r"unverschämt", r"inakzeptabel",
                     r"abzocke", r"katastrophe", r"inadmissible", r"scandaleux", r"arnaque", r"inacceptable",
                     r"inaceitável", r"vergonhoso", r"golpe", r"inaccettabile", r"vergognoso", r"truffa",
                     r"onacceptabel", r"schandalig", r"oplichting"),
     "angry tone"),
    ("urgent", _words(r"urgente", r"de inmediato", r"inmediatamente", r"dringend", r"sofort", r"eilig",
                      r"urgent", r"immédiatement", r"imediatamente", r"subito", r"immediatamente", r"spoed",
                      r"dringend", r"onmiddellijk"),
     "urgent tone"),
)
_PRIORITY_TAGS = frozenset({"vip", "priority", "urgent", "high_priority", "enterprise"})
_VOICE_CHANNELS = frozenset({"voice", "phone", "call"})
SEVERAL_QUESTIONS = 3


SIGNAL_NAMES = frozenset([name for name, _, _ in _CONTENT_SIGNALS]
                         + ["several_questions", "priority_ticket", "voice_channel"])


def risk_signals(ticket: Ticket) -> list[RiskSignal]:
    text = "\n".join(m.text for m in ticket.messages if m.author == "customer") + "\n" + ticket.subject
    found = [name for name, pattern, _ in _CONTENT_SIGNALS + _CONTENT_SIGNALS_ELSEWHERE if pattern.search(text)]
    signals = [RiskSignal(name, reason) for name, _, reason in _CONTENT_SIGNALS if name in found]
    shouting = [w for w in re.findall(r"\b[A-Z]{4,}\b", text) if w not in {"HTTP", "HTML", "JSON", "HTTPS", "SAML", "CSV"}]
    if len(shouting) >= 2 or text.count("!!") >= 1:
        signals.append(RiskSignal("angry", "shouting (capitals or repeated exclamation marks)"))
    if ticket.latest_customer_message.count("?") >= SEVERAL_QUESTIONS:
        signals.append(RiskSignal("several_questions", f"asks {SEVERAL_QUESTIONS} or more questions at once"))
    priority = sorted(ticket.tags & _PRIORITY_TAGS)
    if priority:
        signals.append(RiskSignal("priority_ticket", f"priority ticket (tagged {', '.join(priority)})"))
    if (ticket.channel or "").lower() in _VOICE_CHANNELS:
        signals.append(RiskSignal("voice_channel", "came in by phone: a written reply is not what the customer expects"))
    return signals
