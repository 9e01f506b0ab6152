"""Word tokens: the one tokenisation that MinHash, its Python statement and the options'
checks share (standard library only)."""

from __future__ import annotations

import re
import unicodedata

TOKEN = r"\w+"
"""A token is a run of word characters, after NFKC and lower-casing."""


def tokens(text: str) -> list[str]:
    """The word tokens of ``text`` (NFKC, lower case, runs of word characters)."""
    return re.findall(TOKEN, unicodedata.normalize("NFKC", text).lower())
