"""Read a length guess out of the question probe's answer ("about 150", "150-200", "~1k", junk)."""

from __future__ import annotations

import re

_WORDS_TO_TOKENS = 1.35
# Guesses outside this range are junk (a digit-constrained model that runs on: "100000", or "0");
# no chat answer runs past a long context window.
MIN_GUESS, MAX_GUESS = 1.0, 32_768.0
_NUMBER = r"(\d+(?:[.,]\d+)*)\s*([kK]\b|[kK](?=\s|$)|thousand\b|hundred\b)?"
_RANGE = re.compile(_NUMBER + r"\s*(?:-|–|to|or)\s*" + _NUMBER)
_SINGLE = re.compile(_NUMBER)
_WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "a hundred": 100,
    "a thousand": 1000,
    "thousand": 1000,
}
_WORD = re.compile(r"\b(" + "|".join(sorted(_WORD_NUMBERS, key=len, reverse=True)) + r")\b", re.I)


def _value(digits: str, scale: str | None) -> float:
    # "1,200" is a thousands separator; "2.5" a decimal point.
    text = digits.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", digits) else digits.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        value = float(re.sub(r"[.,].*", "", digits))
    scale = (scale or "").lower()
    if scale in ("k", "thousand"):
        value *= 1000
    elif scale == "hundred":
        value *= 100
    return value


def parse_length_guess(answer: str | None) -> float | None:
    """Tokens the model expects to write, or None when the answer holds no usable number."""
    if not answer:
        return None
    text = answer.strip()
    m = _RANGE.search(text)
    if m:
        lo, hi = _value(m.group(1), m.group(2)), _value(m.group(3), m.group(4) or m.group(2))
        value = (lo + hi) / 2
        end = m.end()
    else:
        m = _SINGLE.search(text)
        if m:
            value, end = _value(m.group(1), m.group(2)), m.end()
        else:
            w = _WORD.search(text)
            if not w:
                return None
            value, end = float(_WORD_NUMBERS[w.group(1).lower()]), w.end()
    if re.match(r"\s*words?\b", text[end:], re.I):
        value *= _WORDS_TO_TOKENS
    return value if MIN_GUESS <= value <= MAX_GUESS else None
