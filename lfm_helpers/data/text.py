"""Small renderers that turn values into the many ways people write them.

Dates, times, prices and counts appear in the data in several surface forms ("2024-03-05",
"March 5, 2024", "the 5th of March, 2024"), while targets always use one normal form. Learning
that mapping is much of what the extraction and tool-use tasks teach, and keeping the renderers in
one place makes it easy to see which forms exist and to hold some back for test-only families.
"""

from __future__ import annotations

import datetime as dt

from lfm_helpers.tools import WEEKDAYS

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_SMALL = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
)


def number_word(n: int) -> str:
    """``3 -> "three"`` for 0..20, digits otherwise."""
    return _SMALL[n] if 0 <= n < len(_SMALL) else str(n)


def ordinal(n: int) -> str:
    """``1 -> "1st"``, ``12 -> "12th"``, ``22 -> "22nd"``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def iso_date(date: str) -> dt.date:
    return dt.date.fromisoformat(date)


def date_long(date: str) -> str:
    """``"2024-03-05" -> "March 5, 2024"``."""
    d = iso_date(date)
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def date_day_month(date: str) -> str:
    """``"2024-03-05" -> "5 March 2024"``."""
    d = iso_date(date)
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def date_weekday(date: str) -> str:
    """``"2024-03-05" -> "Tuesday, March 5, 2024"``."""
    d = iso_date(date)
    return f"{WEEKDAYS[d.weekday()]}, {date_long(date)}"


def date_ordinal(date: str) -> str:
    """``"2024-03-05" -> "the 5th of March, 2024"`` (a form kept for test-only families)."""
    d = iso_date(date)
    return f"the {ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}"


def date_dotted(date: str) -> str:
    """``"2024-03-05" -> "05.03.2024"`` (day first; a form kept for test-only families)."""
    d = iso_date(date)
    return f"{d.day:02d}.{d.month:02d}.{d.year}"


def time_12h(time: str) -> str:
    """``"18:30" -> "6:30 pm"``, ``"09:00" -> "9:00 am"``, ``"12:15" -> "12:15 pm"``."""
    hour, minute = (int(x) for x in time.split(":"))
    suffix = "am" if hour < 12 else "pm"
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {suffix}"


def price_plain(price: float) -> str:
    """``12.5 -> "12.50"``."""
    return f"{price:.2f}"


def price_dollars(price: float) -> str:
    """``12.5 -> "$12.50"``."""
    return f"${price:.2f}"


def duration_words(minutes: int) -> str:
    """``60 -> "an hour"``, ``90 -> "an hour and a half"``, ``45 -> "45 minutes"``."""
    return {
        30: "half an hour",
        60: "an hour",
        90: "an hour and a half",
        120: "two hours",
    }.get(minutes, f"{minutes} minutes")


def plural(noun: str, count: int) -> str:
    """English plural of the last word of ``noun`` when ``count != 1`` (enough for our nouns)."""
    if count == 1:
        return noun
    if noun.endswith(("s", "sh", "ch", "x")):
        return noun + "es"
    return noun + "s"
