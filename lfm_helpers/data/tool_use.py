"""Multi-turn tool-use conversations in LFM2's Pythonic call format.

The task
    A user asks something a tool answers (a sum, a unit conversion, date arithmetic, a fact about
    a city of the world). The assistant replies with *only* a tool call; the runtime answers with
    a ``tool`` message holding the tool's result; the assistant then answers in one sentence that
    contains the result. About a third of the conversations go on: the user asks a follow-up that
    needs a second call building on the first result ("And in feet?", "Which weekday is that?",
    "And what about Velden?"). A small share (about 5%) is chit-chat that needs no tool at all,
    so the model also learns when *not* to call one.

    Every tool result in the data is what :func:`lfm_helpers.tools.call_tool` returns for the
    expected call, so a conversation can be replayed against the real tools and each turn scored.

Template families, and why test uses unseen ones
    Users phrase each intent in several *families* ("How many miles is 12 km?" vs. "Convert 12 km
    to miles."). Train and val draw from the first families of each intent, test only from the
    others; follow-up questions are split the same way. Test therefore measures whether a model
    learned to map requests to calls, not to recognise training sentences. Some families write
    dates as "March 5, 2024" or "the 5th of March, 2024", which the model must normalise to the
    ``YYYY-MM-DD`` the tools accept.

Rows (``data/tool_use/{train,val,test}.jsonl``)::

    {"id": "tool_use-train-00000",
     "family": "convert.how_many",           # the family of the first user message
     "tools": ["calculator", "convert_units"],   # tools offered (needed ones + distractors)
     "messages": [{"role": "system"|"user"|"assistant"|"tool", "content": str}, ...],
     "expected_calls": [[{"name": ..., "arguments": {...}}], ...],
     "final_answers": ["7.4565", ...]}

    ``messages`` starts with the system prompt; each user message is followed either by an
    assistant tool-call message (content is exactly ``format_tool_calls(...)``), one ``tool``
    message with the result, and an assistant final answer; or, for chit-chat, by a final answer
    only. The k-th assistant message that contains a tool call corresponds to
    ``expected_calls[k]`` (one call per turn in this data); the k-th assistant message that does
    not corresponds to ``final_answers[k]``, a short string that a correct answer must contain:
    the number of a numeric result ("7.4565" of "7.4565 mi"), otherwise the whole result
    ("Thursday", "2024-04-04", "UTC+2"); for chit-chat a key word ("help", "welcome").
    :func:`conversation_turns` walks a row in exactly this way, giving each assistant turn with
    the messages before it, so an evaluator can generate and score one turn at a time. The tool
    list belongs in ``tools``; a chat template renders it into the system prompt.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lfm_helpers.data import text as tx
from lfm_helpers.data.world import World
from lfm_helpers.tools import (
    TOOLS,
    CityTable,
    ToolCall,
    call_tool,
    city_table_from_rows,
    format_number,
    format_tool_calls,
    parse_tool_calls,
)

SPLIT_SIZES: dict[str, int] = {"train": 3000, "val": 200, "test": 300}
MULTI_TURN_SHARE = 1 / 3
NO_TOOL_SHARE = 0.05

SYSTEM_PROMPT = (
    "You are a helpful assistant. When a question needs a tool, reply with only a tool call. "
    "When the tool result arrives, answer in one short sentence that includes it."
)

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def answer_key(result: str) -> str:
    """What a final answer must contain: the number of a ``"7.4565 mi"``-style result, else all
    of it (dates, weekdays, dishes, ``"UTC+2"``)."""
    head = result.split(" ")[0]
    return head if _NUMBER.fullmatch(head) else result


def _number_from(text: str) -> int | float:
    """``"32" -> 32``, ``"7.4565" -> 7.4565``: how a model passes a previous result on."""
    return float(text) if "." in text else int(text)


# --------------------------------------------------------------------------------------------
# Phrasings: (family name, template). The first ``n_train`` of each list are train/val families.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phrasings:
    """User templates for one intent; ``date_styles`` say how each template writes dates."""

    templates: tuple[tuple[str, str], ...]
    n_train: int
    date_styles: tuple[str, ...] = ()

    def pick(self, rng: random.Random, split: str) -> tuple[int, str, str]:
        """``(index, family name, template)`` from the train/val or the test part."""
        indices = range(self.n_train) if split != "test" else range(self.n_train, len(self.templates))
        i = rng.choice(list(indices))
        return i, *self.templates[i]


_DATE_RENDER: dict[str, Callable[[str], str]] = {
    "iso": lambda d: d,
    "long": tx.date_long,
    "day_month": tx.date_day_month,
    "ordinal": tx.date_ordinal,
}

CALC = Phrasings(
    (
        ("calc.what_is", "What is {expr}?"),
        ("calc.calculate", "Calculate {expr}."),
        ("calc.can_you", "Can you compute {expr} for me?"),
        ("calc.work_out", "Please work out {expr}."),
        ("calc.equals", "{expr} = ?"),
        ("calc.need_result", "I need the result of {expr}."),
        ("calc.quick_maths", "Quick maths: how much is {expr}?"),
        ("calc.evaluate", "Help me evaluate the expression {expr}, please."),
    ),
    n_train=6,
)
SHOPPING = Phrasings(
    (
        ("shopping.total", "I want to buy {qty} x {product} at ${price} each. What is the total?"),
        ("shopping.how_much", "How much do {qty} {products} cost if one costs ${price}?"),
        ("shopping.cart", "My cart has {qty} of the {product}, ${price} apiece. What do I pay?"),
        ("shopping.budget", "One {product} is ${price}. What would {qty} of them cost?"),
        ("shopping.gift", "I'm getting {qty} {products} as gifts, each ${price}. Total price?"),
        (
            "shopping.invoice",
            "Invoice line: {product}, quantity {qty}, unit price ${price}. What is the line total?",
        ),
        (
            "shopping.friends",
            "For my friends I'll order {qty} {products}; the shop charges ${price} per piece. How much is that altogether?",
        ),
        ("shopping.multiply", "Price check: ${price} times {qty} for the {product}, what's the sum?"),
    ),
    n_train=6,
)
CONVERT = Phrasings(
    (
        ("convert.how_many", "How many {to} is {value} {from_}?"),
        ("convert.convert", "Convert {value} {from_} to {to}."),
        ("convert.what_is_in", "What is {value} {from_} in {to}?"),
        ("convert.please", "Please convert {value} {from_} into {to}."),
        ("convert.terse", "{value} {from_} to {to}?"),
        ("convert.i_have", "I have {value} {from_}. How much is that in {to}?"),
        ("convert.translate", "Could you tell me how {value} {from_} translates to {to}?"),
        ("convert.express", "Express {value} {from_} in {to}, please."),
    ),
    n_train=6,
)
ADD_DAYS = Phrasings(
    (
        ("add_days.after", "What date is {n} days {direction} {date}?"),
        ("add_days.from", "What is the date {n} days {direction} {date}?"),
        ("add_days.add", "Add {n} days to {date}."),
        ("add_days.today", "If today is {date}, what will the date be in {n} days?"),
        ("add_days.plus", "{date} plus {n} days is which date?"),
        (
            "add_days.deadline",
            "The project starts on {date} and the deadline is {n} days later. When is the deadline?",
        ),
        ("add_days.back", "I'll be back {n} days after {date}. Which date is that?"),
        ("add_days.count_forward", "Starting on {date}, count forward {n} days. Where do I land?"),
    ),
    n_train=6,
    date_styles=("iso", "long", "iso", "iso", "day_month", "long", "ordinal", "iso"),
)
DAYS_BETWEEN = Phrasings(
    (
        ("days_between.between", "How many days are there between {a} and {b}?"),
        ("days_between.from_to", "How many days from {a} to {b}?"),
        ("days_between.count", "Count the days from {a} until {b}."),
        ("days_between.number", "What's the number of days between {a} and {b}?"),
        ("days_between.trip", "If I leave on {a} and return on {b}, how many days am I away?"),
        ("days_between.terse", "{a} to {b}: how many days?"),
        ("days_between.how_long", "How long, in days, is it from {a} to {b}?"),
        ("days_between.separating", "Tell me the day count separating {a} and {b}."),
    ),
    n_train=6,
    date_styles=("iso", "iso", "long", "day_month", "long", "iso", "ordinal", "iso"),
)
WEEKDAY = Phrasings(
    (
        ("weekday.day_of_week", "What day of the week is {d}?"),
        ("weekday.which", "Which weekday is {d}?"),
        ("weekday.what_day", "What day is {d}?"),
        ("weekday.tell_me", "Tell me the weekday of {d}."),
        ("weekday.fall_on", "On which day of the week does {d} fall?"),
        ("weekday.party", "We're having a party on {d}. What day of the week is that?"),
        ("weekday.would_be", "{d}: which day of the week would that be?"),
        ("weekday.born", "I was born on {d}. What day of the week was that?"),
    ),
    n_train=6,
    date_styles=("iso", "iso", "long", "day_month", "long", "iso", "ordinal", "long"),
)
LOOKUP = Phrasings(
    (
        ("lookup.what_is", "What is the {fp} of {city}?"),
        ("lookup.look_up", "Look up the {fp} of {city}."),
        ("lookup.tell_me", "Tell me the {fp} of {city}."),
        ("lookup.do_you_know", "Do you know the {fp} of {city}?"),
        ("lookup.id_like", "I'd like to know the {fp} of {city}."),
        ("lookup.its", "{city}: what's its {fp}?"),
        ("lookup.find_out", "Could you find out the {fp} for {city}?"),
        ("lookup.quick_question", "Quick question about {city}. What is its {fp}?"),
    ),
    n_train=6,
)
CHITCHAT = Phrasings(
    (
        ("chitchat.hi", "Hi!"),
        ("chitchat.hello", "Hello there, who are you?"),
        ("chitchat.thanks", "Thanks for your help!"),
        ("chitchat.morning", "Good morning!"),
        ("chitchat.what_can_you_do", "What can you do?"),
        ("chitchat.bye", "Thank you, that's all for today."),
        ("chitchat.how_going", "Hey, how's it going?"),
        ("chitchat.cheers", "Cheers, that was useful."),
    ),
    n_train=6,
)
_CHITCHAT_REPLIES: dict[str, tuple[str, str]] = {
    "greeting": (
        "Hello! I can help with calculations, unit conversions, dates and city facts. How can I help?",
        "help",
    ),
    "thanks": ("You're welcome! Let me know if you need anything else.", "welcome"),
}
_CHITCHAT_KIND = {
    "chitchat.hi": "greeting",
    "chitchat.hello": "greeting",
    "chitchat.thanks": "thanks",
    "chitchat.morning": "greeting",
    "chitchat.what_can_you_do": "greeting",
    "chitchat.bye": "thanks",
    "chitchat.how_going": "greeting",
    "chitchat.cheers": "thanks",
}

# Follow-up questions, split like the first-turn families.
FOLLOW_CONVERT = Phrasings(
    (
        ("f.and_in", "And how much is that in {to}?"),
        ("f.what_is_that", "What is that in {to}?"),
        ("f.now_convert", "Now convert that to {to}."),
        ("f.and", "And in {to}?"),
        ("f.also", "Could you also give me that in {to}?"),
        ("f.same_amount", "Same amount in {to}, please?"),
    ),
    n_train=4,
)
FOLLOW_CALC = Phrasings(
    (
        ("f.now", "Now {op}."),
        ("f.can_you", "Great. Can you {op}?"),
        ("f.next", "Next, {op}."),
        ("f.then", "Then {op}, please."),
        ("f.what_if", "What do I get if I {op}?"),
        ("f.and_then", "And if we {op}?"),
    ),
    n_train=4,
)
FOLLOW_WEEKDAY = Phrasings(
    (
        ("f.day_of_week", "What day of the week is that?"),
        ("f.which_weekday", "Which weekday will that be?"),
        ("f.and_weekday", "And what weekday is it?"),
        ("f.tell_day", "Tell me the day of the week for that date."),
        ("f.falls_on", "Which day does that fall on?"),
        ("f.name_day", "Can you name the weekday of that date?"),
    ),
    n_train=4,
)
FOLLOW_LATER = Phrasings(
    (
        ("f.later", "And what is the date {n} days later?"),
        ("f.after_that", "What date is {n} days after that?"),
        ("f.add", "Add {n} days to it."),
        ("f.then_in", "Then where are we {n} days on?"),
        ("f.move", "Move that date forward by {n} days."),
        ("f.plus", "That date plus {n} days?"),
    ),
    n_train=4,
)
FOLLOW_WEEKS = Phrasings(
    (
        ("f.weeks", "How many weeks is that?"),
        ("f.in_weeks", "What is that in weeks?"),
        ("f.divide", "Divide that by 7 to get weeks."),
        ("f.weeks_please", "In weeks, please."),
        ("f.how_many_weeks", "So how many weeks would that make?"),
        ("f.as_weeks", "Can you give me that as weeks?"),
    ),
    n_train=4,
)
FOLLOW_OTHER_CITY = Phrasings(
    (
        ("f.what_about", "And what about {city}?"),
        ("f.same_for", "Same for {city}?"),
        ("f.and_city", "And {city}?"),
        ("f.compare", "How does {city} compare? Look it up too."),
        ("f.now_check", "Now check {city} as well."),
        ("f.also", "What is it for {city}, then?"),
    ),
    n_train=4,
)

# --------------------------------------------------------------------------------------------
# Units and city fields as users say them
# --------------------------------------------------------------------------------------------

_UNIT_NAMES: dict[str, tuple[str, str]] = {
    "mm": ("millimeter", "millimeters"),
    "cm": ("centimeter", "centimeters"),
    "m": ("meter", "meters"),
    "km": ("kilometer", "kilometers"),
    "in": ("inch", "inches"),
    "ft": ("foot", "feet"),
    "yd": ("yard", "yards"),
    "mi": ("mile", "miles"),
    "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"),
    "kg": ("kilogram", "kilograms"),
    "t": ("tonne", "tonnes"),
    "oz": ("ounce", "ounces"),
    "lb": ("pound", "pounds"),
    "ml": ("milliliter", "milliliters"),
    "l": ("liter", "liters"),
    "cup": ("cup", "cups"),
    "pt": ("pint", "pints"),
    "qt": ("quart", "quarts"),
    "gal": ("gallon", "gallons"),
    "C": ("degree Celsius", "degrees Celsius"),
    "F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "K": ("kelvin", "kelvin"),
}
# (from, to, third unit for a follow-up, smallest value, largest value)
_CONVERSIONS: tuple[tuple[str, str, str, int, int], ...] = (
    ("km", "mi", "m", 1, 500),
    ("mi", "km", "m", 1, 300),
    ("m", "ft", "in", 1, 3000),
    ("ft", "m", "cm", 1, 5000),
    ("cm", "in", "mm", 1, 300),
    ("in", "cm", "mm", 1, 120),
    ("m", "yd", "ft", 1, 1000),
    ("mm", "in", "cm", 1, 900),
    ("kg", "lb", "oz", 1, 300),
    ("lb", "kg", "g", 1, 400),
    ("g", "oz", "mg", 1, 2000),
    ("oz", "g", "kg", 1, 200),
    ("t", "kg", "lb", 1, 40),
    ("l", "gal", "qt", 1, 400),
    ("gal", "l", "ml", 1, 100),
    ("ml", "cup", "l", 50, 2000),
    ("cup", "ml", "l", 1, 12),
    ("qt", "l", "pt", 1, 40),
    ("pt", "ml", "cup", 1, 20),
    ("C", "F", "K", -30, 45),
    ("F", "C", "K", -20, 110),
    ("C", "K", "F", -40, 100),
    ("K", "C", "F", 200, 400),
)

_FIELD_PHRASES: dict[str, tuple[str, ...]] = {
    "country": ("country",),
    "population": ("population", "number of inhabitants"),
    "founded": ("founding year", "year of founding"),
    "area_km2": ("area", "area in square kilometers"),
    "elevation_m": ("elevation", "altitude"),
    "utc_offset": ("time zone", "UTC offset"),
    "avg_temp_c": ("average temperature", "mean temperature"),
    "famous_dish": ("famous dish", "signature dish"),
}
_FIELD_ANSWERS: dict[str, tuple[str, ...]] = {
    "country": ("{city} is in {r}.", "{city} is a city in {r}."),
    "population": ("{city} has a population of {r}.", "The population of {city} is {r}."),
    "founded": ("{city} was founded in {r}.", "The founding year of {city} is {r}."),
    "area_km2": ("{city} covers {r}.", "The area of {city} is {r}."),
    "elevation_m": ("{city} lies at an elevation of {r}.", "The elevation of {city} is {r}."),
    "utc_offset": ("{city} is in the {r} time zone.", "The time zone of {city} is {r}."),
    "avg_temp_c": ("The average temperature in {city} is {r}.", "{city} has an average temperature of {r}."),
    "famous_dish": ("The famous dish of {city} is {r}.", "{city} is known for {r}."),
}


def _unit_name(unit: str, value: float) -> str:
    singular, plural = _UNIT_NAMES[unit]
    return singular if value == 1 else plural


# --------------------------------------------------------------------------------------------
# Building conversations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One user question and how it is answered: a call whose result feeds the answer, or
    (``call is None``) a direct reply. ``answer`` maps the tool result to ``(reply, key)``."""

    user: str
    call: ToolCall | None
    answer: Callable[[str], tuple[str, str]]
    follow_up: Callable[[str], Exchange] | None = None


def _dated_phrasings() -> tuple[Phrasings, ...]:
    return tuple(v for v in globals().values() if isinstance(v, Phrasings) and v.date_styles)


def check_date_styles(overrides: Mapping[str, str]) -> None:
    """Refuse date-style overrides (``{family: style}``) that would change what the test split
    measures: an unknown style, a family without dates, or a held-out family."""
    train, test = set(), set()
    for phrasings in _dated_phrasings():
        for i, (family, _) in enumerate(phrasings.templates):
            (train if i < phrasings.n_train else test).add(family)
    for family, style in overrides.items():
        if style not in _DATE_RENDER:
            raise ValueError(f"unknown date style {style!r} for {family!r}; styles: {', '.join(_DATE_RENDER)}")
        if family in test:
            raise ValueError(f"{family!r} is a held-out (test) family; only train families' date styles can change")
        if family not in train:
            raise ValueError(f"{family!r} is not a template family that writes dates; "
                             f"those are: {', '.join(sorted(train))}")


def date_styles_by_split(overrides: Mapping[str, str] | None = None) -> dict[str, dict[str, list[str]]]:
    """Which template families write dates in each style, in the train/val part and in the
    held-out test part: ``{style: {"train": [families], "test": [families]}}``, with
    ``overrides`` (``{family: style}``, see :func:`build_split`) applied.

    A style that only held-out families use asks the model for a conversion it never saw in
    SFT (the per-family rates of notebook 04's search show what that costs).
    """
    overrides = dict(overrides or {})
    check_date_styles(overrides)
    out: dict[str, dict[str, list[str]]] = {}
    for phrasings in _dated_phrasings():
        for i, style in enumerate(phrasings.date_styles):
            family = phrasings.templates[i][0]
            part = "train" if i < phrasings.n_train else "test"
            out.setdefault(overrides.get(family, style), {"train": [], "test": []})[part].append(family)
    return out


class _Builder:
    """Draws exchanges for one split; holds the rng, the world and the split's phrasing part."""

    def __init__(self, world: World, rng: random.Random, split: str,
                 date_styles: Mapping[str, str] | None = None) -> None:
        self.world, self.rng, self.split = world, rng, split
        self.date_styles = dict(date_styles or {})

    def phrase(self, phrasings: Phrasings, **slots: Any) -> tuple[str, str]:
        """``(family, user text)``; the date slots (``date``, ``a``, ``b``, ``d``) hold ISO dates and
        are written in the family's date style (or the style ``date_styles`` gives the family)."""
        i, family, template = phrasings.pick(self.rng, self.split)
        style = self.date_styles.get(family) or (phrasings.date_styles[i] if phrasings.date_styles else "iso")
        rendered = {
            k: _DATE_RENDER[style](v) if k in ("date", "a", "b", "d") else v for k, v in slots.items()
        }
        return family, template.format(**rendered)

    def date(self) -> str:
        return self.world.random_date(self.rng).isoformat()

    # -- first turns ------------------------------------------------------------------------

    def calc(self) -> tuple[str, Exchange]:
        rng = self.rng

        def num() -> str:
            return (
                str(rng.randint(2, 999))
                if rng.random() < 0.75
                else format_number(rng.randint(10, 9999) / 100)
            )

        shape = rng.choice(
            (
                "{a} + {b}",
                "{a} - {b}",
                "{a} * {b}",
                "{a} / {b}",
                "({a} + {b}) * {c}",
                "{a} * {b} + {c}",
                "{s} ** 2",
                "({a} - {b}) / {c}",
            )
        )
        expr = shape.format(a=num(), b=num(), c=rng.randint(2, 12), s=rng.randint(2, 40))
        family, user = self.phrase(CALC, expr=expr)
        return family, self._calc_exchange(user, expr)

    def shopping(self) -> tuple[str, Exchange]:
        product = self.rng.choice(self.world.products)
        qty = self.rng.randint(2, 12)
        price = tx.price_plain(product.price)
        family, user = self.phrase(
            SHOPPING, qty=qty, product=product.name, products=tx.plural(product.name, qty), price=price
        )
        return family, self._calc_exchange(user, f"{qty} * {price}")

    def _calc_exchange(self, user: str, expr: str) -> Exchange:
        def answer(r: str) -> tuple[str, str]:
            return self.rng.choice((f"{expr} = {r}.", f"The result is {r}.")), answer_key(r)

        def follow_up(r: str) -> Exchange:
            op, phrase = self.rng.choice(
                (
                    ("*", "multiply that by {n}"),
                    ("/", "divide that by {n}"),
                    ("+", "add {n} to that"),
                    ("-", "subtract {n} from that"),
                )
            )
            n = self.rng.randint(2, 20)
            _, text = self.phrase(FOLLOW_CALC, op=phrase.format(n=n))
            return self._calc_exchange(text, f"{r} {op} {n}")

        return Exchange(user, ToolCall("calculator", {"expression": expr}), answer, follow_up)

    def convert(self) -> tuple[str, Exchange]:
        from_unit, to_unit, third, low, high = self.rng.choice(_CONVERSIONS)
        value: int | float = self.rng.randint(low, high)
        if self.rng.random() < 0.3:
            value = round(value + self.rng.randint(1, 9) / 10, 1)
        family, user = self.phrase(
            CONVERT,
            value=format_number(value),
            from_=_unit_name(from_unit, value),
            to=_UNIT_NAMES[to_unit][1],
        )
        return family, self._convert_exchange(user, value, from_unit, to_unit, third)

    def _convert_exchange(
        self, user: str, value: int | float, from_unit: str, to_unit: str, third: str | None
    ) -> Exchange:
        def answer(r: str) -> tuple[str, str]:
            key = answer_key(r)
            template = self.rng.choice(("{v} {f} is {r} {t}.", "{v} {f} equals {r} {t}."))
            text = template.format(
                v=format_number(value),
                f=_unit_name(from_unit, value),
                r=key,
                t=_unit_name(to_unit, float(key)),
            )
            return text, key

        def follow_up(r: str) -> Exchange:
            assert third is not None
            _, text = self.phrase(FOLLOW_CONVERT, to=_UNIT_NAMES[third][1])
            return self._convert_exchange(text, _number_from(answer_key(r)), to_unit, third, None)

        call = ToolCall("convert_units", {"value": value, "from_unit": from_unit, "to_unit": to_unit})
        return Exchange(user, call, answer, follow_up if third else None)

    def add_days(self) -> tuple[str, Exchange]:
        date, n = self.date(), self.rng.randint(2, 400)
        back = self.rng.random() < 0.2
        family, user = self.phrase(ADD_DAYS, date=date, n=n, direction="before" if back else "after")
        if back and "{direction}" not in dict(ADD_DAYS.templates)[family]:
            back = False  # only the "before/after" families can ask to go back
        return family, self._add_days_exchange(user, date, -n if back else n)

    def _add_days_exchange(self, user: str, date: str, days: int) -> Exchange:
        def answer(r: str) -> tuple[str, str]:
            if days < 0:
                return f"{-days} days before {date} was {r}.", r
            return self.rng.choice((f"{days} days after {date} is {r}.", f"The date will be {r}.")), r

        def follow_up(r: str) -> Exchange:
            _, text = self.phrase(FOLLOW_WEEKDAY)
            return self._weekday_exchange(text, r, with_follow_up=False)

        return Exchange(user, ToolCall("add_days", {"date": date, "days": days}), answer, follow_up)

    def days_between(self) -> tuple[str, Exchange]:
        a = self.world.random_date(self.rng)
        start, end = a.isoformat(), (a + dt.timedelta(days=self.rng.randint(1, 700))).isoformat()
        family, user = self.phrase(DAYS_BETWEEN, a=start, b=end)

        def answer(r: str) -> tuple[str, str]:
            return self.rng.choice(
                (f"There are {r} days between {start} and {end}.", f"That is {r} days.")
            ), r

        def follow_up(r: str) -> Exchange:
            _, text = self.phrase(FOLLOW_WEEKS)
            expr = f"{r} / 7"

            def weeks(w: str) -> tuple[str, str]:
                return f"That is {w} weeks.", answer_key(w)

            return Exchange(text, ToolCall("calculator", {"expression": expr}), weeks)

        return family, Exchange(
            user, ToolCall("days_between", {"start": start, "end": end}), answer, follow_up
        )

    def weekday(self) -> tuple[str, Exchange]:
        date = self.date()
        family, user = self.phrase(WEEKDAY, d=date)
        return family, self._weekday_exchange(user, date, with_follow_up=True)

    def _weekday_exchange(self, user: str, date: str, with_follow_up: bool) -> Exchange:
        def answer(r: str) -> tuple[str, str]:
            return self.rng.choice((f"{date} is a {r}.", f"It falls on a {r}.")), r

        def follow_up(r: str) -> Exchange:
            n = self.rng.randint(2, 60)
            _, text = self.phrase(FOLLOW_LATER, n=n)
            return self._add_days_exchange(text, date, n)

        return Exchange(
            user, ToolCall("weekday", {"date": date}), answer, follow_up if with_follow_up else None
        )

    def lookup(self) -> tuple[str, Exchange]:
        city = self.rng.choice(self.world.cities).name
        field = self.rng.choice(list(_FIELD_PHRASES))
        family, user = self.phrase(LOOKUP, fp=self.rng.choice(_FIELD_PHRASES[field]), city=city)
        return family, self._lookup_exchange(user, city, field, with_follow_up=True)

    def _lookup_exchange(self, user: str, city: str, field: str, with_follow_up: bool) -> Exchange:
        def answer(r: str) -> tuple[str, str]:
            return self.rng.choice(_FIELD_ANSWERS[field]).format(city=city, r=r), answer_key(r)

        def follow_up(r: str) -> Exchange:
            if field in ("elevation_m", "avg_temp_c"):
                from_unit, to_unit = ("m", "ft") if field == "elevation_m" else ("C", "F")
                _, text = self.phrase(FOLLOW_CONVERT, to=_UNIT_NAMES[to_unit][1])
                return self._convert_exchange(text, _number_from(answer_key(r)), from_unit, to_unit, None)
            other = self.rng.choice([c.name for c in self.world.cities if c.name != city])
            _, text = self.phrase(FOLLOW_OTHER_CITY, city=other)
            return self._lookup_exchange(text, other, field, with_follow_up=False)

        call = ToolCall("lookup_city", {"city": city, "field": field})
        return Exchange(user, call, answer, follow_up if with_follow_up else None)

    def chitchat(self) -> tuple[str, Exchange]:
        family, user = self.phrase(CHITCHAT)
        reply, key = _CHITCHAT_REPLIES[_CHITCHAT_KIND[family]]
        return family, Exchange(user, None, lambda _r: (reply, key))


INTENT_WEIGHTS: dict[str, float] = {
    "calc": 0.13,
    "shopping": 0.08,
    "convert": 0.2,
    "add_days": 0.13,
    "days_between": 0.12,
    "weekday": 0.12,
    "lookup": 0.22,
}
"""How often each kind of first question is drawn (chit-chat aside)."""


def build_conversation(
    world: World, rng: random.Random, split: str, conversation_id: str, city_table: CityTable,
    date_styles: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One row: draws an intent, runs every expected call through :func:`call_tool`."""
    builder = _Builder(world, rng, split, date_styles)
    if rng.random() < NO_TOOL_SHARE:
        family, exchange = builder.chitchat()
    else:
        intents: dict[str, Callable[[], tuple[str, Exchange]]] = {
            "calc": builder.calc,
            "shopping": builder.shopping,
            "convert": builder.convert,
            "add_days": builder.add_days,
            "days_between": builder.days_between,
            "weekday": builder.weekday,
            "lookup": builder.lookup,
        }
        name = rng.choices(list(INTENT_WEIGHTS), list(INTENT_WEIGHTS.values()))[0]
        family, exchange = intents[name]()
    # every tool exchange has a follow-up, so this makes MULTI_TURN_SHARE of all conversations
    multi_turn = exchange.follow_up is not None and rng.random() < MULTI_TURN_SHARE / (1 - NO_TOOL_SHARE)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    expected_calls: list[list[dict[str, Any]]] = []
    final_answers: list[str] = []
    used_tools: list[str] = []
    current: Exchange | None = exchange
    while current is not None:
        messages.append({"role": "user", "content": current.user})
        result = ""
        if current.call is not None:
            result = call_tool(current.call.name, current.call.arguments, city_table=city_table)
            messages.append({"role": "assistant", "content": format_tool_calls([current.call])})
            messages.append({"role": "tool", "content": result})
            expected_calls.append([current.call.to_dict()])
            used_tools.append(current.call.name)
        reply, key = current.answer(result)
        messages.append({"role": "assistant", "content": reply})
        final_answers.append(key)
        current = current.follow_up(result) if multi_turn and current.follow_up is not None else None
        multi_turn = False  # at most one follow-up
    distractors = rng.sample([t for t in TOOLS if t not in used_tools], rng.randint(0, 3))
    offered = [t for t in TOOLS if t in used_tools or t in distractors]
    return {
        "id": conversation_id,
        "family": family,
        "tools": offered,
        "messages": messages,
        "expected_calls": expected_calls,
        "final_answers": final_answers,
    }


def build_split(world: World, split: str, seed: int = 0, size: int | None = None,
                date_styles: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """All conversations of one split; lookups use the world's own city table. ``size``
    overrides :data:`SPLIT_SIZES`; a larger split starts with the rows of the smaller one.

    ``date_styles`` (``{train family: style}``, notebook 04's search) writes a train family's
    dates in another style. Rendering draws nothing from the rng, so the rows are the same
    conversations with only those dates rewritten, and the test split (held-out families,
    which :func:`check_date_styles` refuses to restyle) is byte-identical.
    """
    check_date_styles(date_styles or {})
    rng = random.Random(f"tool_use:{seed}:{split}")
    table = city_table_from_rows(world.city_rows())
    return [
        build_conversation(world, rng, split, f"tool_use-{split}-{i:05d}", table, date_styles)
        for i in range(SPLIT_SIZES[split] if size is None else size)
    ]


# --------------------------------------------------------------------------------------------
# Scoring helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One assistant turn to generate and score.

    ``prefix`` is every message before it (what the model is given); ``kind`` is ``"call"`` (the
    model should emit ``expected_calls``) or ``"answer"`` (its reply should contain
    ``expected_answer``); ``reference`` is the assistant message in the data.
    """

    index: int
    prefix: list[dict[str, str]]
    kind: str
    expected_calls: list[dict[str, Any]]
    expected_answer: str | None
    reference: str


def conversation_turns(row: Mapping[str, Any]) -> list[Turn]:
    """The assistant turns of a row, paired with ``expected_calls``/``final_answers`` as the
    module docstring describes. Raises ``ValueError`` if the row's counts do not match."""
    turns: list[Turn] = []
    calls: Sequence[Any] = row["expected_calls"]
    answers: Sequence[str] = row["final_answers"]
    n_calls = n_answers = 0
    for i, message in enumerate(row["messages"]):
        if message["role"] != "assistant":
            continue
        prefix = [dict(m) for m in row["messages"][:i]]
        if parse_tool_calls(message["content"]):
            if n_calls >= len(calls):
                raise ValueError(f"{row['id']}: more tool-call turns than expected_calls")
            turns.append(Turn(i, prefix, "call", list(calls[n_calls]), None, message["content"]))
            n_calls += 1
        else:
            if n_answers >= len(answers):
                raise ValueError(f"{row['id']}: more answer turns than final_answers")
            turns.append(Turn(i, prefix, "answer", [], answers[n_answers], message["content"]))
            n_answers += 1
    if n_calls != len(calls) or n_answers != len(answers):
        raise ValueError(f"{row['id']}: expected_calls/final_answers do not match the assistant turns")
    return turns
