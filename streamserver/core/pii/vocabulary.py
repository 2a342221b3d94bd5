"""Word sets that several recognisers share."""

from __future__ import annotations

from functools import cache
from pathlib import Path

MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
    "jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
# Words after a number that make it a quantity, price or time, not an identifier.
QUANTITY_WORDS = {
    "minute", "minutes", "min", "mins", "hour", "hours", "hr", "hrs", "second", "seconds",
    "day", "days", "week", "weeks", "month", "months", "year", "years", "yr", "yrs",
    "decade", "decades", "century", "centuries", "o'clock", "am", "pm", "a.m", "p.m",
    "dollar", "dollars", "buck", "bucks", "cent", "cents", "euro", "euros", "pound",
    "pounds", "percent", "per", "%", "times", "time", "people", "persons", "items",
    "item", "kids", "children", "miles", "mile", "km", "kilometers", "meters", "feet",
    "foot", "inches", "degrees", "points", "pages", "grand", "k", "million", "billion",
    "thousand", "hundred", "calls", "tries", "attempts", "rings", "boxes", "pieces",
    "units", "orders", "packages", "gb", "mb", "tb", "pro", "plus", "max", "mini",
    "ish", "or", "to", "more", "less", "of",
}  # fmt: skip
# Function words and small talk: not part of a name, a street or city, or an email.
STOP_WORDS = {
    "a", "about", "above", "across", "after", "again", "against", "all", "also", "am", "an",
    "and", "any", "are", "around", "as", "at", "be", "because", "been", "before", "being",
    "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing",
    "done", "down", "during", "each", "either", "else", "even", "ever", "every", "few",
    "for", "from", "further", "get", "got", "had", "has", "have", "having", "he", "her",
    "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "me", "might", "more", "most", "much", "must",
    "my", "myself", "near", "neither", "never", "next", "no", "nor", "not", "now", "of",
    "off", "on", "once", "one", "only", "or", "other", "our", "ours", "out", "over", "own",
    "please", "quite", "rather", "really", "same", "shall", "she", "should", "so", "some",
    "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these",
    "they", "this", "those", "though", "through", "to", "too", "under", "until", "up",
    "upon", "us", "very", "was", "we", "were", "what", "when", "where", "whether", "which",
    "while", "who", "whom", "whose", "why", "will", "with", "within", "without", "would",
    "yet", "you", "your", "yours", "yourself", "yesterday", "today", "tomorrow", "tonight",
    "okay", "ok", "yes", "yeah", "yep", "um", "uh", "er", "erm", "hmm", "oh", "well",
    "thanks", "thank", "sorry", "hello", "hi", "hey", "bye", "goodbye", "sure", "right",
    "alright", "actually", "basically", "anyway", "spelled", "spell", "spelling", "called",
    "calling", "speaking", "last", "first", "still", "already",
    "maybe", "probably", "definitely", "like", "kind", "sort", "stuff", "thing",
    "things", "great", "good", "fine", "new", "old", "big", "small", "going", "gonna",
    "want", "wanna", "need", "let", "lets", "let's", "i'm", "it's", "that's", "i'll",
    "we're", "you're", "don't", "can't", "won't", "isn't", "wasn't", "didn't", "doesn't",
    "what's", "where's", "there's", "he's", "she's", "we'll", "you'll", "i've", "i'd",
    "said", "say", "says", "told", "tell", "ask", "asked", "know", "think", "see",
    "look", "make", "made", "take", "took", "give", "gave", "call", "come", "came", "go",
    "went", "live", "lives", "living", "lived", "located", "moved", "email", "number",
    "phone", "address", "name", "card", "account", "code", "order", "back", "today's",
}  # fmt: skip


@cache
def common_words() -> frozenset[str]:
    """About 19,000 common lower-case English words (``common_words.txt``): a word
    outside them is rare, or a name, or something Whisper could not make out."""
    text = (Path(__file__).parent / "common_words.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))
