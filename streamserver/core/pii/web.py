"""Web addresses and IP addresses, written or spoken ("acme dot com slash returns",
"w w w dot acme dot co dot uk", "ten dot zero dot zero dot one", "192.168.0.1").

Both read a *stream*: the words joined back into one string, spoken joiners ("dot",
"slash", "colon") turned into their characters, with each character owned by the
word it came from, as ``emails`` does for email addresses. A URL never claims words
that the email rules read as an email address ("john at acme dot com").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .emails import email_spans
from .entities import IP_ADDRESS, SCORE_CONTEXT, SCORE_SHAPE, SCORE_WEAK, URL
from .numbers import NumberKind, NumberWord
from .text import Token, phrase_at, split_phrases
from .triggers import LOOKAHEAD, LOOKBACK, Trigger
from .vocabulary import STOP_WORDS

# ----------------------------------------------------------------------------- URL

# Top-level domains a written host may end with.
_TLDS = (
    "com|net|org|edu|gov|mil|int|io|co|us|uk|ca|de|fr|au|in|info|biz|ai|app|dev|ly|tv|nz|"
    "ie|es|it|nl|eu|jp|ch|se|no|dk|fi|be|at|pl|br|mx|me|shop|store|online|site|xyz|tech|"
    "cloud|health|bank|insurance|travel|gg|fm|ru|cn|kr|za|sg|hk|ar|cl|pt|gr|cz|ro|hu|il|"
    "ae|sa|tr|ua|nyc|london|uk\\.com|email|news|blog|page|live|today"
)
# Spoken TLDs ("acme dot com"): only those that are not also everyday words, so that
# "a dot in it" or "the dot on the map" stay speech.
_SPOKEN_TLDS = frozenset({
    "com", "net", "org", "edu", "gov", "io", "co", "uk", "ca", "au", "de", "fr", "nz",
    "ie", "info", "biz", "ai", "app", "dev", "tv", "ly", "eu", "mx", "es", "nl", "jp",
    "ch", "se", "dk", "fi", "pl", "br", "shop", "store", "online", "site", "xyz", "tech",
    "cloud", "gg", "fm",
})  # fmt: skip
_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
# Labels are separated by a mandatory dot, so the search cannot backtrack badly.
_URL_RE = re.compile(
    rf"(?<![\w.@/\-])(?:(?:https?|ftp)://)?(?:{_LABEL}\.)+(?:{_TLDS})(?![\w@\-])"
    r"(?::\d{1,5})?(?:/[\w\-.~%?=&#+/]*)?"
)
# A URL cut off by the window end: "www.acme", "https://", "w w w dot".
_URL_PARTIAL_RE = re.compile(r"(?<![\w.@/\-])(?:(?:https?|ftp):(?://)?|www\.)[\w\-./]*$")
_SPOKEN_OPS = {"dot": ".", "slash": "/", "colon": ":", "dash": "-", "hyphen": "-"}
# Said before or after an address: make a bare domain a confident one.
_URL_CUES = split_phrases(
    "website | web site | site | url | link | web address | domain | homepage | home page"
    " | web page | webpage | go to | visit | browse to | online at | log on to | log onto"
    " | log in at | login at | log into | sign in at | sign up at | check out | portal"
    " | blog | redirected | redirects | redirected me to | posted on | find us at"
    " | find us on | on our site | browser | http | https"
)
_VERSION_WORDS = {"version", "v", "build", "release", "update", "firmware", "patch", "ios",
                  "android", "windows", "macos", "python", "java"}


def web_spans(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    wanted: frozenset[str],
) -> list[WordSpan]:
    """URLs and IP addresses, for those of the two in ``wanted``."""
    out: list[WordSpan] = []
    if URL in wanted:
        out.extend(url_spans(toks, trig))
    if IP_ADDRESS in wanted:
        out.extend(ip_spans(toks, nums))
    return out


def _cue_near(bare: Sequence[str], cues: tuple[tuple[str, ...], ...], first: int,
              last: int, before: int = LOOKBACK, after: int = LOOKAHEAD) -> bool:
    """Whether one of ``cues`` starts within ``before`` words before ``first`` or
    ``after`` words from ``last``."""
    heads = {cue[0] for cue in cues}
    starts = [*range(max(0, first - before), first), *range(last, min(len(bare), last + after))]
    return any(
        bare[j] in heads and any(phrase_at(bare, j, cue) for cue in cues) for j in starts
    )


def _url_stream(toks: Sequence[Token]) -> tuple[str, list[int], list[bool]]:
    """The words as one string for the URL pattern; each character's word (-1 for a
    space); which words were spoken joiners ("dot", "slash", spelled "w w w")."""
    n = len(toks)
    pieces: list[str] = []
    owner: list[int] = []
    spoken = [False] * n
    glue_next = False
    i = 0
    while i < n:
        tok = toks[i]
        bare = tok.bare
        used = 1
        piece: str
        if bare in _SPOKEN_OPS:
            piece = _SPOKEN_OPS[bare]
            spoken[i] = True
        elif bare == "forward" and i + 1 < n and toks[i + 1].bare == "slash":
            piece, used = "/", 2
            spoken[i] = spoken[i + 1] = True
        elif bare == "w" and i + 2 < n and toks[i + 1].bare == "w" and toks[i + 2].bare == "w":
            piece, used = "www", 3  # "w w w", however cased
            spoken[i] = spoken[i + 1] = spoken[i + 2] = True
        elif (
            bare == "h"
            and i + 3 < n
            and [t.bare for t in toks[i + 1 : i + 4]] == ["t", "t", "p"]
        ):
            used = 5 if i + 4 < n and toks[i + 4].bare == "s" else 4
            piece = "https" if used == 5 else "http"
            for j in range(i, i + used):
                spoken[j] = True
        else:
            piece = tok.low.strip(" ,;!?\"'()[]{}…").rstrip(".")
            if piece.rstrip(":") in {"http", "https", "ftp"}:
                piece = piece.rstrip(":") + ":" if piece.endswith(":") else piece
            else:
                piece = piece.rstrip(":.")
        if not piece:
            piece = " "
        starts_glued = piece[0] in "./:-" and piece != " "
        if pieces and not (glue_next or starts_glued):
            pieces.append(" ")
            owner.append(-1)
        pieces.append(piece)
        owner.extend([i if piece != " " else -1] * len(piece))
        glue_next = piece[-1] in "./:-" and piece != " "
        i += used
    return "".join(pieces), owner, spoken


def url_spans(toks: Sequence[Token], trig: Sequence[Trigger | None]) -> list[WordSpan]:
    """Web addresses: a host ending in a known TLD, with scheme, port and path.

    Spoken hosts ("acme dot com") need a TLD that is no everyday word and labels that
    are not function words. Words the email rules claim are never a URL.
    """
    n = len(toks)
    if not n:
        return []
    stream, owner, spoken = _url_stream(toks)
    if "." not in stream and "www" not in stream and "http" not in stream:
        return []
    # Words of an email address: 2 where an "@" or a spoken "at" makes it certain, 1
    # where only its shape does ("michael.johnson.example.com"; the email rules also
    # read "www.acme-shop.co.uk" so), which a "www", scheme, path or cue outweighs.
    in_email = [0] * n
    for span in email_spans(toks, trig):
        words = range(span.first, span.last)
        sure = 2 if any(_at_sign(toks, j) for j in words) else 1
        for j in words:
            in_email[j] = max(in_email[j], sure)
    bare = [t.bare for t in toks]
    out: list[WordSpan] = []

    def words_of(start: int, end: int) -> tuple[int, int] | None:
        idx = [owner[c] for c in range(start, end) if owner[c] >= 0]
        return (min(idx), max(idx) + 1) if idx else None

    for m in _URL_RE.finditer(stream):
        rng = words_of(m.start(), m.end())
        if rng is None:
            continue
        first, last = rng
        text = m.group(0)
        host = text.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        labels = host.split(".")
        if labels[0] == "www":
            labels = labels[1:]
        if len(labels) < 2 or not any(c.isalpha() for c in "".join(labels[:-1])):
            continue
        if len(labels[0]) < 2 and not text.startswith(("http", "www")):
            continue  # "a.co", "u.s" in an abbreviation
        was_spoken = any(spoken[j] for j in range(first, last))
        if was_spoken and not _spoken_host_ok(labels, toks, first, last):
            continue
        if first > 0 and bare[first - 1] in _VERSION_WORDS:
            continue
        strong = (
            text.startswith(("http", "ftp", "www"))
            or "/" in text
            or _cue_near(bare, _URL_CUES, first, last)
        )
        email = max(in_email[first:last])
        if email == 2 or (email and not strong):
            continue
        out.append(WordSpan(first, last, URL, SCORE_CONTEXT if strong else SCORE_SHAPE))
    partial = _URL_PARTIAL_RE.search(stream)
    if partial:
        rng = words_of(partial.start(), partial.end())
        if rng is not None and max(in_email[rng[0] : rng[1]]) < 2:
            out.append(WordSpan(rng[0], rng[1], URL, SCORE_WEAK))
    return out


def _at_sign(toks: Sequence[Token], j: int) -> bool:
    """An "@" at word ``j``: written, or a spoken "at" after a plausible user name (not
    "log in at portal.example.com")."""
    if "@" in toks[j].raw:
        return True
    return toks[j].bare == "at" and j > 0 and toks[j - 1].bare not in STOP_WORDS


def _spoken_host_ok(labels: list[str], toks: Sequence[Token], first: int, last: int) -> bool:
    """A host said with "dot": a TLD that is not an everyday word, labels that are."""
    if labels[-1] not in _SPOKEN_TLDS and not (
        len(labels) >= 3 and labels[-2] in {"co", "com", "org", "ac", "gov"}
    ):
        return False
    # The words that made the labels (not the joiners) must not be function words:
    # "the dot com era", "a dot in it".
    for j in range(first, last):
        word = toks[j].bare
        if word in {"slash", "forward"} or "/" in word:
            break  # the path may hold any word ("slash account")
        if word in _SPOKEN_OPS or word in {"w", "www", "h", "t", "p", "s"}:
            continue
        if word in STOP_WORDS and word not in _SPOKEN_TLDS:
            return False
    return True


# ------------------------------------------------------------------------------ IP

# Words that say the next numbers are an IP address ...
_IP_CUES = split_phrases("ip | i p | ipv4 | ipv6 | ip address | internet protocol")
_IP_CUE_HEADS = frozenset(cue[0] for cue in _IP_CUES)
# ... and words that make a dotted quad near them more certainly one.
_IP_CONTEXT = _IP_CUES + split_phrases(
    "server | router | gateway | dns | subnet | host | modem | firewall | proxy | network"
)
_IP_DOTS = {"dot", "point", "period"}
# Between an IP cue and the address: "my IP address is ...".
_IP_CONNECTORS = {"is", "was", "it's", "its", "address", "my", "the", "your", "of", "at",
                  "on", "uh", "um", "should", "be", "number", "static", "public", "local",
                  "private", "set", "to", "v4", "v6", "ipv4", "ipv6"}
_IPV4_RE = re.compile(
    r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:/\d{1,2})?(?::\d{1,5})?(?![\w]|\.\d)"
)
_IPV6_RE = re.compile(r"[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:/\d{1,3})?")
_DIGITS_DOTS_RE = re.compile(r"[\d.]+")
_WRITTEN_IP_PART_RE = re.compile(r"[\d.]+(?:/\d{1,2})?(?::\d{1,5})?")
_SPELLED_IP_KINDS = {NumberKind.SPELLED, NumberKind.WEAK, NumberKind.TEEN, NumberKind.TENS}


def _ip_stream(
    toks: Sequence[Token], nums: Sequence[NumberWord | None]
) -> tuple[str, list[int]]:
    """Number words as digits, "dot" as "."; the digits of a spoken octet ("one nine
    two") glued together, written numbers ("192 168") kept apart."""
    n = len(toks)
    pieces: list[str] = []
    owner: list[int] = []
    prev_spelled = False
    prev_dot = True
    for i, tok in enumerate(toks):
        num = nums[i]
        bare = tok.bare
        spelled = False
        if bare in _IP_DOTS or tok.raw == ".":
            piece = "."
        elif num is not None and num.kind in _SPELLED_IP_KINDS:
            piece = num.digits
            if num.kind == NumberKind.TENS:
                nxt = nums[i + 1] if i + 1 < n else None
                if nxt is None or nxt.kind != NumberKind.SPELLED or nxt.digits == "0":
                    piece += "0"  # "twenty" alone; "ninety two" adds the 2 next
            spelled = True
        elif _WRITTEN_IP_PART_RE.fullmatch(bare) and any(c.isdigit() for c in bare):
            piece = bare
        else:
            piece = " "
        glued = piece == "." or prev_dot or piece.startswith(".") or (spelled and prev_spelled)
        if pieces and not glued:
            pieces.append(" ")
            owner.append(-1)
        pieces.append(piece)
        owner.extend([i if piece != " " else -1] * len(piece))
        prev_spelled = spelled
        prev_dot = piece.endswith(".")
    return "".join(pieces), owner


def ip_spans(toks: Sequence[Token], nums: Sequence[NumberWord | None]) -> list[WordSpan]:
    """IPv4 (dotted, written or spoken; spaced after an IP cue) and written IPv6."""
    n = len(toks)
    bare = [t.bare for t in toks]
    out: list[WordSpan] = []
    dotted = any(w in _IP_DOTS or ("." in w and any(c.isdigit() for c in w)) for w in bare)
    stream, owner = _ip_stream(toks, nums) if dotted else ("", [])
    if "." in stream:
        for m in _IPV4_RE.finditer(stream):
            if not all(int(g) <= 255 for g in m.groups()):
                continue
            idx = [owner[c] for c in range(m.start(), m.end()) if owner[c] >= 0]
            first, last = min(idx), max(idx) + 1
            if first > 0 and bare[first - 1] in _VERSION_WORDS:
                continue
            cue = _cue_near(bare, _IP_CONTEXT, first, last)
            out.append(WordSpan(first, last, IP_ADDRESS, SCORE_CONTEXT if cue else SCORE_SHAPE))
    for i, word in enumerate(bare):
        if ":" in word and _is_ipv6(word):
            out.append(WordSpan(i, i + 1, IP_ADDRESS, SCORE_CONTEXT))
    # After an IP cue: "my IP is 192 168 0 1", or an address still arriving.
    for i in range(n):
        if bare[i] not in _IP_CUE_HEADS or not any(phrase_at(bare, i, c) for c in _IP_CUES):
            continue
        j = i + 1
        while j < n and j - i <= 4 and bare[j] in _IP_CONNECTORS:
            j += 1
        k = j
        while k < n and k - j < 16 and _ip_word(bare[k], nums[k]):
            k += 1
        if k == j:
            continue
        octets = [int(b) for b in bare[j:k] if b.isdigit() and len(b) <= 3]
        spaced = len(octets) == k - j and len(octets) == 4 and all(o <= 255 for o in octets)
        if spaced:
            out.append(WordSpan(j, k, IP_ADDRESS, SCORE_CONTEXT))
        elif k == n:  # cut off by the window end
            out.append(WordSpan(j, k, IP_ADDRESS, SCORE_WEAK))
    return out


def _ip_word(bare: str, num: NumberWord | None) -> bool:
    """A word that can be part of a spoken or written IPv4 address."""
    if bare in _IP_DOTS:
        return True
    if num is None:
        return False
    if num.kind == NumberKind.GROUP:
        return _DIGITS_DOTS_RE.fullmatch(bare) is not None
    return num.kind in _SPELLED_IP_KINDS


def _is_ipv6(word: str) -> bool:
    if not _IPV6_RE.fullmatch(word):
        return False
    if "::" not in word and word.count(":") < 7:
        return False  # "10:30:00" is a time
    try:
        ipaddress.IPv6Network(word, strict=False) if "/" in word else ipaddress.IPv6Address(word)
    except ValueError:
        return False
    return True
