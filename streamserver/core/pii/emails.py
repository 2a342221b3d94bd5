"""Email addresses: written, spoken ("dot", "at"), or garbled by the ASR."""

from __future__ import annotations

import re
from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .entities import EMAIL_ADDRESS, SCORE_CONTEXT, SCORE_SHAPE, SCORE_WEAK
from .name_lists import FIRST_NAMES, SURNAMES
from .numbers import NUMBER_WORDS
from .text import EDGE_PUNCTUATION, Token
from .triggers import LOOKAHEAD, LOOKBACK, Trigger
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

    def words_of(start: int, end: int) -> tuple[int, int] | None:
        idx = [owner[c] for c in range(start, end) if owner[c] >= 0]
        return (min(idx), max(idx) + 1) if idx else None

    def emit(start: int, end: int, score: float, extend: bool = False) -> None:
        rng = words_of(start, end)
        if rng is not None:
            first = _local_start(toks, rng[0]) if extend else rng[0]
            out.append(WordSpan(first, rng[1], EMAIL_ADDRESS, score))

    # With an "@" or a spoken "at": an email unless it is a URL, an IP address or
    # "log in at portal.example.com".
    for regex in (_EMAIL_AT_RE, _EMAIL_AT_PROVIDER_RE):
        for m in regex.finditer(stream):
            spoken = _at_is_spoken(stream, owner, toks, m.start(), m.end())
            # "my email is will at ...": after an email cue, any word is a local part.
            strict = spoken and _email_cue(
                toks, trig, owner[m.start()], owner[m.end() - 1] + 1
            ) is not True
            if _at_email_ok(stream, owner, toks, m.start(), m.end(), strict):
                emit(m.start(), m.end(), SCORE_CONTEXT, extend=spoken)
    # Without one ("michael.johnson.example.com"): only where an email is asked for or
    # sent to; a domain said on its own is a URL (web.py).
    for m in _EMAIL_NO_AT_RE.finditer(stream):
        cue = _email_cue(toks, trig, owner[m.start()], owner[m.end() - 1] + 1)
        if (
            cue is None
            and owner[m.start()] == owner[m.end() - 1]  # written as one word by the ASR
            and _named_local_part(m.group(0))
        ):
            cue = False  # "michael.johnson.example.com": a person's address by its shape
        if cue is not None and not _url_like(stream, owner, toks, m.start(), m.end()):
            emit(m.start(), m.end(), SCORE_CONTEXT if cue else SCORE_SHAPE)
    # "mario.mit.mit.mit": three or more dotted labels is an email the ASR mangled.
    for m in _DOT_CHAIN_RE.finditer(stream):
        cue = _email_cue(toks, trig, owner[m.start()], owner[m.end() - 1] + 1)
        if cue is not None and not _url_like(stream, owner, toks, m.start(), m.end()):
            emit(m.start(), m.end(), SCORE_WEAK)
    # "example not org": the ASR hears "dot" as "not"; only when a TLD closes the chain.
    for m in _NOT_DOT_EMAIL_RE.finditer(stream):
        labels = re.split(r" not |\.", m.group(0))
        if (
            " not " in m.group(0)
            and len(labels) >= 3
            and not _url_like(stream, owner, toks, m.start(), m.end())
        ):
            emit(m.start(), m.end(), SCORE_WEAK)
    out.extend(_email_target_spans(toks))
    out.extend(_email_is_spans(toks))
    # Cut by the window end: "my email is john dot smith at", "Michael.Johnson.example".
    partial = _EMAIL_PARTIAL_RE.search(stream)
    if partial:
        first_word = owner[partial.start()]
        cue = _email_cue(toks, trig, first_word, len(toks))
        text = partial.group(0)
        labels = [label for label in re.split(r"[.@]", text) if len(label) >= 2]
        provider = re.search(rf"@(?:{_EMAIL_PROVIDERS})\b", text)
        domain = text.partition("@")[2]
        shaped = len(labels) >= 3 or (len(labels) >= 2 and "." in domain.rstrip("."))
        if "@" in text:
            strict = cue is not True and _at_is_spoken(
                stream, owner, toks, partial.start(), partial.end()
            )
            ok = (cue is not None or provider or shaped) and _at_email_ok(
                stream, owner, toks, partial.start(), partial.end(), strict
            )
        else:
            ok = cue is not None and "." in text and not _url_like(
                stream, owner, toks, partial.start(), partial.end()
            )
        if ok:
            emit(partial.start(), partial.end(), SCORE_WEAK)
    return out


# Verbs that send something to an address: "send it to X", "write to X".
_CUE_VERBS = {"write", "reach", "contact", "message", "cc", "copy", "reply", "respond"}
_LABEL_JOINERS = {"dot", "underscore", "dash", "hyphen"}
_PATH_WORDS = {"slash", "backslash"}
_WEB_WORDS = {"http", "https", "www", "ftp", "website", "site", "url", "link", "web", "page",
              "blog", "browser", "domain", "visit", "ip", "server", "router", "ping"}


def _named_local_part(text: str) -> bool:
    """A dotted address whose first label is a person's name: a website is rarely
    named "michael.johnson.example.com", an email address often is."""
    labels = text.lower().split(".")
    return len(labels) >= 3 and (labels[0] in FIRST_NAMES or labels[0] in SURNAMES)


def _email_cue(
    toks: Sequence[Token], trig: Sequence[Trigger | None], first: int, last: int
) -> bool | None:
    """What says that the words ``first`` .. ``last - 1`` are an email address: True
    for an email cue ("my email is", "... is my email"), False for something sent to
    them ("send the receipt to X"), None for nothing."""
    if Trigger.EMAIL in trig[max(0, first - LOOKBACK) : first]:
        return True
    if Trigger.EMAIL in trig[last : last + LOOKAHEAD] and not toks[last - 1].sentence_end:
        return True
    if first and toks[first - 1].bare in {"to", "at"}:
        for k in range(max(0, first - 7), first - 1):
            if toks[k].bare in _SEND_VERBS or toks[k].bare in _CUE_VERBS:
                return False
    return None


def _at_is_spoken(stream: str, owner: list[int], toks: Sequence[Token], start: int,
                  end: int) -> bool:
    """Whether the "@" of the match was said as "at" (not written)."""
    at = stream.find("@", start, end)
    return at >= 0 and toks[owner[at]].bare == "at"


def _at_email_ok(
    stream: str, owner: list[int], toks: Sequence[Token], start: int, end: int, strict: bool
) -> bool:
    """An address with "@" / "at" that is no URL or IP address, and, with ``strict``
    (a spoken "at" and no email cue), whose local part is no ordinary word ("log in
    at", "the server's at")."""
    if _url_like(stream, owner, toks, start, end):
        return False
    if not strict:
        return True
    at = stream.find("@", start, end)
    local = {owner[c] for c in range(start, at) if owner[c] >= 0}
    if len(local) == 1:
        j = next(iter(local))
        word = toks[j].bare
        if j and _single_letter(toks[j]) and _single_letter(toks[j - 1]):
            return True  # the last of the letters spelled before "at": "M, E, N, D, O, Z, A"
        if word in STOP_WORDS or "'" in word or word in _WEB_WORDS:
            return False
    return True


def _url_like(stream: str, owner: list[int], toks: Sequence[Token], start: int,
              end: int) -> bool:
    """A web address or an IP address, not an email: "www..." / "http..." (written or
    spelled "W W W"), a path after it ("acme.com slash help"), or numbers only
    ("ten dot zero dot zero dot one", "10.12.40.115")."""
    text = stream[start:end]
    domain = text.rpartition("@")[2]
    if text.startswith(("www.", "http")) or domain.startswith("www."):
        return True
    first = owner[start]
    last = owner[end - 1]
    if first >= 1 and toks[first].bare == "w" and toks[first - 1].bare == "w":
        return True  # "W W W dot northwind dot com"
    if any(toks[k].bare in {"http", "https", "www"} for k in range(max(0, first - 3), first)):
        return True
    if stream[end : end + 1] == "/":
        return True
    nxt = last + 1
    if nxt < len(toks) and (
        toks[nxt].bare in _PATH_WORDS
        or (toks[nxt].bare == "forward" and nxt + 1 < len(toks) and toks[nxt + 1].bare == "slash")
        or toks[nxt].raw.startswith("/")
    ):
        return True
    labels = [label for label in re.split(r"[.@]", domain) if label.strip()]
    return bool(labels) and all(
        word.isdigit() or word in NUMBER_WORDS for label in labels for word in label.split()
    )


def _local_start(toks: Sequence[Token], first: int) -> int:
    """The first word of a spoken local part whose regex match starts at ``first``:
    back over letters spelled before "at" ("oconnor, O C O N N O R, at"), the word
    they spell, and the labels joined to it ("m dot oconnor"); back over a name
    before trailing digits ("mike underscore chen 88 at")."""
    j = first
    core = toks[j].raw.strip(EDGE_PUNCTUATION)
    letters = ""
    if _single_letter(toks[j]):
        while j > 0 and _single_letter(toks[j - 1]) and not toks[j - 1].sentence_end:
            j -= 1
        letters = "".join(toks[k].bare for k in range(j, first + 1))
        if len(letters) < 2:
            return first
    elif "-" in core and all(len(part) == 1 for part in core.split("-")):
        letters = core.replace("-", "").lower()  # "L-I-S-A"
    elif not core.isdigit():
        return first
    if j == 0 or toks[j - 1].sentence_end:
        return j
    prev = toks[j - 1]
    said = prev.bare.replace("'", "").replace("-", "")
    if letters and said != letters:
        return j  # the letters spell the local part itself ("J O H N at")
    if not letters and (prev.bare in STOP_WORDS or not said.isalpha() or prev.phrase_end):
        return j  # "It's 88 at": no name before the digits
    j -= 1
    while (
        j >= 2
        and toks[j - 1].bare in _LABEL_JOINERS
        and not toks[j - 2].sentence_end
        and toks[j - 2].bare.isalnum()
        and toks[j - 2].bare not in STOP_WORDS
    ):
        j -= 2  # "m dot oconnor", "mike underscore chen"
    return j


def _single_letter(tok: Token) -> bool:
    """A spelled letter: "O", "c"; a capital "A" or "I" too, but not the article "a"
    or a lower-case "i"."""
    core = tok.raw.strip(EDGE_PUNCTUATION)
    return len(core) == 1 and core.isalpha() and core not in {"a", "i"}


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
