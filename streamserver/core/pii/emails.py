"""Email addresses: written, spoken ("dot", "at"), or garbled by the ASR."""

from __future__ import annotations

import re
from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .entities import EMAIL_ADDRESS, SCORE_CONTEXT, SCORE_SHAPE, SCORE_WEAK
from .text import Token
from .triggers import LOOKBACK, Trigger
from .vocabulary import STOP_WORDS

_EMAIL_PROVIDERS = (
    "gmail|googlemail|yahoo|hotmail|outlook|icloud|aol|protonmail|proton|live|msn|"
    "comcast|mail|gmx|yandex|zoho|fastmail"
)
_TLDS = (
    "com|net|org|edu|gov|mil|io|co|us|uk|ca|de|fr|au|in|info|biz|ai|app|dev|ly|tv|nz|ie|"
    "es|it|nl|eu|jp|ch|se|no|dk|fi|be|at|pl|br|mx|org\\.uk|co\\.uk"
)

_EMAIL_AT_RE = re.compile(
    rf"(?<![\w.+\-])(?!(?:me|us|him|her|them|you|it)@)[a-z0-9][\w.%+\-]*@[a-z0-9][\w\-]*"
    rf"(?:\.[\w\-]+)*\.(?:{_TLDS})\b"
)
_EMAIL_AT_PROVIDER_RE = re.compile(
    rf"(?<![\w.+\-])(?!(?:me|us|him|her|them|you|it)@)[a-z0-9][\w.%+\-]*@(?:{_EMAIL_PROVIDERS})\b"
)
# Whisper often drops the "@": "michael.johnson.example.com" (three or more labels).
_EMAIL_NO_AT_RE = re.compile(
    rf"(?<![\w.@])(?!www\.)[a-z][\w\-]*(?:\.[\w\-]+){{1,}}\.(?:{_TLDS})\b"
)
_DOT_CHAIN_RE = re.compile(r"(?<![\w.@])(?!www\.)[a-z][a-z0-9_\-]+(?:\.[a-z][a-z0-9_\-]+){2,}")
_NOT_DOT_EMAIL_RE = re.compile(
    r"(?<![\w.@])[a-z][\w\-]*(?:(?: not |\.)[a-z][\w\-]*)*(?: not |\.)(?:com|org|net|edu)\b"
)
_EMAIL_PARTIAL_RE = re.compile(
    r"(?<![\w.@])(?!www\.|(?:me|us|him|her|them|you|it)@)"
    r"[a-z][\w.\-]*(?:@[\w.\-]*|\.[\w\-]+\.[\w\-]+)[.@]?$"
)


def email_spans(toks: Sequence[Token], trig: Sequence[Trigger | None]) -> list[WordSpan]:
    """Emails written or spoken ("john dot smith at gmail dot com")."""
    pieces: list[str] = []
    owner: list[int] = []
    glue_next = False
    for i, tok in enumerate(toks):
        bare = tok.bare
        op = {"dot": ".", "at": "@", "underscore": "_", "dash": "-", "hyphen": "-"}.get(bare)
        core = tok.low.strip(" ,;:!?\"'()…")
        core = core.rstrip(".")
        piece = op if op is not None else core
        starts_glued = op is not None or (piece[:1] in {".", "@", "_", "-"})
        if pieces and not (glue_next or starts_glued):
            pieces.append(" ")
            owner.append(-1)
        pieces.append(piece)
        owner.extend([i] * len(piece))
        glue_next = op is not None or piece[-1:] in {".", "@", "_", "-"}
    stream = "".join(pieces)
    out: list[WordSpan] = []

    def emit(start: int, end: int, score: float) -> None:
        idx = [owner[c] for c in range(start, end) if owner[c] >= 0]
        if idx:
            out.append(WordSpan(min(idx), max(idx) + 1, EMAIL_ADDRESS, score))

    for m in _EMAIL_AT_RE.finditer(stream):
        emit(m.start(), m.end(), SCORE_CONTEXT)
    for m in _EMAIL_AT_PROVIDER_RE.finditer(stream):
        emit(m.start(), m.end(), SCORE_CONTEXT)
    for m in _EMAIL_NO_AT_RE.finditer(stream):
        first_word = owner[m.start()]
        email_ctx = Trigger.EMAIL in trig[max(0, first_word - LOOKBACK) : first_word]
        if m.group(0).count(".") >= 2 or email_ctx:  # three labels, or "email" before
            emit(m.start(), m.end(), SCORE_CONTEXT if email_ctx else SCORE_SHAPE)
    # "mario.mit.mit.mit": three or more dotted labels is an email the ASR mangled.
    for m in _DOT_CHAIN_RE.finditer(stream):
        emit(m.start(), m.end(), SCORE_WEAK)
    # "example not org": the ASR hears "dot" as "not"; only when a TLD closes the chain.
    for m in _NOT_DOT_EMAIL_RE.finditer(stream):
        labels = re.split(r" not |\.", m.group(0))
        if " not " in m.group(0) and len(labels) >= 3:
            emit(m.start(), m.end(), SCORE_WEAK)
    out.extend(_email_target_spans(toks))
    out.extend(_email_is_spans(toks))
    # Cut by the window end: "my email is john dot smith at", "Michael.Johnson.example".
    partial = _EMAIL_PARTIAL_RE.search(stream)
    if partial:
        first_word = owner[partial.start()]
        email_ctx = Trigger.EMAIL in trig[max(0, first_word - LOOKBACK) : first_word]
        text = partial.group(0)
        labels = [label for label in re.split(r"[.@]", text) if len(label) >= 2]
        provider = re.search(rf"@(?:{_EMAIL_PROVIDERS})\b", text)
        domain = text.partition("@")[2]
        shaped = len(labels) >= 3 or (len(labels) >= 2 and "." in domain.rstrip("."))
        if (email_ctx and ("." in text or "@" in text)) or provider or shaped:
            emit(partial.start(), partial.end(), SCORE_WEAK)
    return out


_SEND_VERBS = {"send", "sent", "sending", "end", "forward", "forwarded", "forwarding", "mail",
               "mailed", "email", "emailed", "e-mail", "e-mailed"}
_EMAIL_VERBS = {"email", "emailed", "e-mail", "e-mailed"}
_SENT_THINGS = {"receipt", "receipts", "invoice", "invoices", "confirmation", "copy", "link",
                "tracking", "updates", "password", "reset", "statements",
                "details", "statement", "bill", "documents", "document", "form", "forms",
                "email", "e-mail", "quote", "report", "ticket", "tickets", "code"}
_SIGN_OFFS = {"thanks", "thank", "please", "cheers", "bye", "okay", "ok"}
# Inside a spoken address; "not"/"and" are how the ASR hears "dot"/"at".
_EMAIL_JOINERS = {"at", "dot", "underscore", "dash", "hyphen", "not", "and"}


# The end of an address: "example.com", or a spoken "... dot com".
_ENDS_WITH_TLD = re.compile(rf"\.(?:{_TLDS})$|^(?:com|net|org|edu|gov)$")


def _email_target_spans(toks: Sequence[Token]) -> list[WordSpan]:
    """What follows "send the receipt to" / "email it to", however the ASR wrote it.

    Whisper often garbles a spoken email ("linda dot davis at example dot com" ->
    "Linda not David and M.M."), so the words between "to" and the sign-off are
    the address. Only after something one sends by email (receipt, invoice, copy...)
    or an explicit "email ... to/at", and only when the target starts like a name.
    """
    n = len(toks)
    out = []
    for i, tok in enumerate(toks):
        if tok.bare not in _SEND_VERBS:
            continue
        to = next((m for m in range(i + 1, min(n, i + 6)) if toks[m].bare in {"to", "at"}), None)
        if to is None or any(toks[m].sentence_end for m in range(i, to)):
            continue
        if tok.bare not in _EMAIL_VERBS and not any(
            toks[m].bare in _SENT_THINGS for m in range(i + 1, to)
        ):
            continue
        start = to + 1
        if start >= n:
            continue
        head = toks[start]
        joined = start + 1 < n and toks[start + 1].bare in {"underscore", "dot", "dash"}
        if not head.bare or (head.bare in STOP_WORDS and not joined) or not head.bare[0].isalpha():
            continue
        spoken = any(toks[m].bare in _EMAIL_JOINERS for m in range(start + 1, min(n, start + 6)))
        if not (head.title or spoken or "." in head.bare or "@" in head.bare):
            continue  # "send the invoice to accounts payable"
        sign_off = next(
            (m for m in range(start + 1, min(n, start + 11)) if toks[m].bare in _SIGN_OFFS), None
        )
        if sign_off is not None and not any(
            toks[m].raw[-1:] in "?!" for m in range(start, sign_off)
        ):
            end = sign_off
        else:
            end = start
            while end < n and end - start < 8 and (
                toks[end].bare not in STOP_WORDS or toks[end].bare in _EMAIL_JOINERS
            ):
                end += 1
                last = toks[end - 1]
                if (last.phrase_end and not last.raw.startswith(".")) or _ENDS_WITH_TLD.search(
                    last.bare
                ):
                    break
            while end < n and end > start + 1 and toks[end - 1].bare in _EMAIL_JOINERS:
                end -= 1  # "... to Maria and" + more words: not the "and"
        out.append(WordSpan(start, end, EMAIL_ADDRESS, SCORE_WEAK))
    return out


def _email_is_spans(toks: Sequence[Token]) -> list[WordSpan]:
    """ "my email is X ... dot com", "email me, it's aye shall not call, get a email.com":
    after "email ... is" everything up to the word that ends the address is the address.
    """
    n = len(toks)
    out = []
    for i, tok in enumerate(toks):
        if tok.bare not in {"email", "e-mail"}:
            continue
        start = next(
            (m + 1 for m in range(i + 1, min(n, i + 5)) if toks[m].bare in {"is", "it's", "was"}),
            None,
        )
        if start is None or start >= n:
            continue
        window = range(start, min(n, start + 12))
        ends = (m + 1 for m in window if _ENDS_WITH_TLD.search(toks[m].bare))
        end = next(ends, None)
        if end is not None and not any(toks[m].sentence_end for m in range(start, end - 1)):
            out.append(WordSpan(start, end, EMAIL_ADDRESS, SCORE_WEAK))
    return out
