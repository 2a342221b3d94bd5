"""Street address shapes: P.O. boxes, ZIPs read in pieces, unit numbers, spelled
house numbers before a weak suffix, capitalised quantity words as street names."""

from __future__ import annotations

import pytest

from streamserver.core.pii import find_spoken_entities


def located(text: str) -> list[str]:
    words = [" " + w for w in text.split()]
    return [
        " ".join(w.strip() for w in words[s.first : s.last])
        for s in find_spoken_entities(words, {"LOCATION"})
    ]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("My mailing address is P.O. Box 4471, Tucson, Arizona 85717.",
         "P.O. Box 4471, Tucson, Arizona 85717."),
        ("send it to post office box 12 please", "post office box 12"),
        ("It's 18 Hillcrest Drive, Bellevue, 9 8 0 0 4.",
         "18 Hillcrest Drive, Bellevue, 9 8 0 0 4."),
        ("My old address was 250 Grand Street, number 5.", "250 Grand Street, number 5."),
        ("It's four forty four Peachtree Circle Northeast, number 210.",
         "four forty four Peachtree Circle Northeast, number 210."),
    ],
)
def test_address_shapes(text: str, address: str) -> None:
    assert located(text) == [address]


@pytest.mark.parametrize(
    "text",
    [
        "We went around in a circle two times.",
        "the grand total was 45 dollars",
        "I waited 20 minutes on the road",
        "Take five, the box is on the floor.",
    ],
)
def test_not_addresses(text: str) -> None:
    assert located(text) == []
