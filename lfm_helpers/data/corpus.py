"""The pretraining corpus: a few million tokens of varied text about the course's world.

A model trained from scratch knows nothing, so the corpus has to teach everything the later
tasks lean on, each through its own kind of document:

- ``city``, ``country``, ``person``: encyclopedic paragraphs, so the world's facts (who lives
  where, how high Kessling lies) are seen many times in many phrasings;
- ``order``, ``event``, ``meeting``, ``contact``: descriptions written by the *train* template
  families of the extraction task (never the test ones), so the inputs of that task are familiar
  text;
- ``story`` and ``dialogue``: connected prose and turn-taking ("Anna: ... / Ben: ..."), the
  shape of a conversation before any chat template exists;
- ``json``: records serialised with ``json.dumps``, mostly in the canonical rendering the
  extraction answers use, so braces, quotes and commas are learned before fine-tuning;
- ``arithmetic``, ``units``, ``calendar``: facts computed by the very functions behind the tools
  and written with the same :func:`~lfm_helpers.tools.format_number`, plus date spellings
  ("March 5, 2024 is 2024-03-05") that the tasks ask a model to normalise.

Each kind gets a share of the characters (:data:`KIND_SHARES`); documents are generated until a
kind's share is filled, then shuffled. Rows of ``data/corpus/{train,val}.jsonl`` are
``{"kind": str, "text": str}``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from typing import Any

from lfm_helpers.data import text as tx
from lfm_helpers.data.extraction import families_for, make_record
from lfm_helpers.data.world import World, record_dict
from lfm_helpers.tools import (
    add_days,
    calculator,
    convert_value,
    days_between,
    format_city_value,
    format_number,
    weekday,
)

TARGET_CHARS: dict[str, int] = {"train": 9_000_000, "val": 300_000}
"""Characters of text per split (about 4 characters per token for this kind of English)."""

KIND_SHARES: dict[str, float] = {
    "city": 0.12,
    "country": 0.02,
    "person": 0.09,
    "order": 0.04,
    "event": 0.04,
    "meeting": 0.04,
    "contact": 0.03,
    "story": 0.14,
    "dialogue": 0.14,
    "json": 0.14,
    "arithmetic": 0.07,
    "units": 0.05,
    "calendar": 0.08,
}

_UNIT_WORDS: dict[str, str] = {
    "mm": "millimeters",
    "cm": "centimeters",
    "m": "meters",
    "km": "kilometers",
    "in": "inches",
    "ft": "feet",
    "yd": "yards",
    "mi": "miles",
    "mg": "milligrams",
    "g": "grams",
    "kg": "kilograms",
    "t": "tonnes",
    "oz": "ounces",
    "lb": "pounds",
    "ml": "milliliters",
    "l": "liters",
    "cup": "cups",
    "pt": "pints",
    "qt": "quarts",
    "gal": "gallons",
    "C": "degrees Celsius",
    "F": "degrees Fahrenheit",
    "K": "kelvin",
}
_UNIT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("mm", "cm", "m", "km", "in", "ft", "yd", "mi"),
    ("mg", "g", "kg", "t", "oz", "lb"),
    ("ml", "l", "cup", "pt", "qt", "gal"),
    ("C", "F", "K"),
)
_SEASONS = ("spring", "summer", "autumn", "winter")


def _pick2(rng: random.Random, items: tuple[Any, ...] | list[Any]) -> tuple[Any, Any]:
    a, b = rng.sample(list(items), 2)
    return a, b


def _population(rng: random.Random, n: int) -> str:
    return f"{n:,}" if rng.random() < 0.5 else str(n)


# --------------------------------------------------------------------------------------------
# Encyclopedic documents
# --------------------------------------------------------------------------------------------


def city_doc(rng: random.Random, world: World) -> str:
    c = rng.choice(world.cities)
    offset = format_city_value("utc_offset", c.utc_offset)
    intro = rng.choice(
        (
            f"{c.name} is a city in {c.country}.",
            f"{c.name} is one of the cities of {c.country}.",
            f"The city of {c.name} lies in {c.country}.",
        )
    )
    facts = [
        rng.choice(
            (
                f"It has a population of {_population(rng, c.population)}.",
                f"{_population(rng, c.population)} people live in {c.name}.",
                f"The population of {c.name} is {_population(rng, c.population)}.",
            )
        ),
        rng.choice(
            (
                f"{c.name} was founded in {c.founded}.",
                f"The city dates back to {c.founded}.",
                f"Its founding year is {c.founded}.",
            )
        ),
        rng.choice(
            (
                f"The city covers {format_number(c.area_km2)} square kilometers.",
                f"Its area is {format_number(c.area_km2)} km2.",
            )
        ),
        rng.choice(
            (
                f"{c.name} lies {c.elevation_m} meters above sea level.",
                f"The elevation of {c.name} is {c.elevation_m} m.",
            )
        ),
        rng.choice((f"{c.name} is in the {offset} time zone.", f"Local time in {c.name} is {offset}.")),
        rng.choice(
            (
                f"The average temperature in {c.name} is {format_number(c.avg_temp_c)} degrees Celsius.",
                f"On average it is {format_number(c.avg_temp_c)} C in {c.name}.",
            )
        ),
        rng.choice(
            (
                f"{c.name} is famous for its {c.famous_dish}.",
                f"The city's best-known dish is {c.famous_dish}.",
                f"Visitors to {c.name} often try the {c.famous_dish}.",
            )
        ),
    ]
    venues = world.venues_in[c.name]
    if venues:
        facts.append(f"Popular venues include the {' and the '.join(v.name for v in venues)}.")
    residents = world.residents[c.name]
    if residents:
        p = rng.choice(residents)
        facts.append(f"{p.name}, a {p.job}, lives in {c.name}.")
    other = rng.choice([o for o in world.cities if o.name != c.name])
    bigger, smaller = (c, other) if c.population > other.population else (other, c)
    facts.append(f"{bigger.name} has more inhabitants than {smaller.name}.")
    higher, lower = (c, other) if c.elevation_m > other.elevation_m else (other, c)
    facts.append(f"{higher.name} lies higher than {lower.name}.")
    rng.shuffle(facts)
    return " ".join([intro, *facts[: rng.randint(4, len(facts))]])


def country_doc(rng: random.Random, world: World) -> str:
    country = rng.choice(world.countries)
    cities = list(world.cities_of(country))
    largest = max(cities, key=lambda c: c.population)
    oldest = min(cities, key=lambda c: c.founded)
    rng.shuffle(cities)
    names = ", ".join(c.name for c in cities[:-1]) + f" and {cities[-1].name}"
    sentences = [
        f"{country} is a country with five cities: {names}.",
        f"The largest city of {country} is {largest.name}, with {_population(rng, largest.population)} inhabitants.",
        f"The oldest city of {country} is {oldest.name}, founded in {oldest.founded}.",
        f"All of {country} uses {format_city_value('utc_offset', largest.utc_offset)}.",
    ]
    if rng.random() < 0.5:
        dishes = "; ".join(f"{c.name} is known for {c.famous_dish}" for c in cities)
        sentences.append(f"Each city has its own dish: {dishes}.")
    return " ".join(sentences)


def person_doc(rng: random.Random, world: World) -> str:
    p = rng.choice(world.people)
    c = world.city_by_name[p.city]
    first = p.first_name
    sentences = [
        rng.choice(
            (
                f"{p.name} is a {p.age}-year-old {p.job} from {p.city}.",
                f"{p.name} works as a {p.job} in {p.city}, {c.country}.",
                f"{p.name}, aged {p.age}, is a {p.job}.",
            )
        ),
        rng.choice(
            (f"{first} lives in {p.city}, a city in {c.country}.", f"{first}'s home town is {p.city}.")
        ),
        rng.choice(
            (
                f"You can reach {first} at {p.email} or by phone at {p.phone}.",
                f"{first}'s email address is {p.email}.",
                f"{first}'s phone number is {p.phone}.",
            )
        ),
        rng.choice(
            (
                f"Like many people in {p.city}, {first} enjoys {c.famous_dish}.",
                f"{first} is {p.age} years old.",
            )
        ),
    ]
    neighbours = [n for n in world.residents[p.city] if n.name != p.name]
    if neighbours:
        n = rng.choice(neighbours)
        sentences.append(f"{first} knows {n.name}, a {n.job} who also lives in {p.city}.")
    return " ".join(sentences)


def record_doc(record_type: str) -> Callable[[random.Random, World], str]:
    """Documents phrased like the extraction inputs, from the train/val families only."""
    families = families_for("train", record_type)

    def make(rng: random.Random, world: World) -> str:
        return rng.choice(families).render(rng, make_record(world, record_type, rng))

    return make


# --------------------------------------------------------------------------------------------
# Stories and dialogues
# --------------------------------------------------------------------------------------------


def story_doc(rng: random.Random, world: World) -> str:
    return rng.choice((_trip_story, _shopping_story, _event_story, _meeting_story))(rng, world)


def _trip_story(rng: random.Random, world: World) -> str:
    p = rng.choice(world.people)
    home = world.city_by_name[p.city]
    dest = rng.choice([c for c in world.cities if c.name != home.name])
    date = world.random_date(rng).isoformat()
    nights = rng.randint(2, 9)
    back = add_days(date, nights)
    first = p.first_name
    parts = [
        f"{p.name} lives in {home.name} and works as a {p.job}.",
        f"One {rng.choice(_SEASONS)} {rng.choice(('morning', 'evening', 'afternoon'))}, {first} decided to visit {dest.name}.",
        f"The trip began on {tx.date_long(date)}, a {weekday(date)}.",
        rng.choice(
            (
                f"{dest.name} lies {dest.elevation_m} meters above sea level, so the air felt different.",
                f"{dest.name} is a city of {_population(rng, dest.population)} people in {dest.country}.",
            )
        ),
        f"In {dest.name}, {first} tried the {dest.famous_dish} and liked it more than expected.",
    ]
    venues = world.venues_in[dest.name]
    if venues:
        parts.append(f"{first} also spent an afternoon at the {rng.choice(venues).name}.")
    parts.append(
        f"After {nights} nights, on {back}, {first} travelled home to {home.name}, "
        f"where the average temperature is {format_number(home.avg_temp_c)} degrees Celsius."
    )
    return " ".join(parts)


def _shopping_story(rng: random.Random, world: World) -> str:
    p = rng.choice(world.people)
    product = rng.choice(world.products)
    qty = rng.randint(2, 6)
    total = calculator(f"{qty} * {tx.price_plain(product.price)}")
    first = p.first_name
    return " ".join(
        [
            f"{p.name} needed a new {product.name}.",
            f"At a shop in {p.city}, one {product.name} cost {tx.price_dollars(product.price)}.",
            f"{first} bought {tx.number_word(qty)} of them, one for home and the rest as presents.",
            f"{qty} times {tx.price_plain(product.price)} is {total}, so {first} paid {total} dollars in total.",
            rng.choice(
                (
                    f"The shop assistant wrapped each {product.name} in paper.",
                    f"{first} carried the bag home through the streets of {p.city}.",
                )
            ),
        ]
    )


def _event_story(rng: random.Random, world: World) -> str:
    e = world.make_event(rng)
    p = rng.choice(world.residents[e.city] or world.people)
    friend = rng.choice([q for q in world.people if q.name != p.name])
    price = "Entry was free" if e.ticket_price == 0 else f"A ticket cost {tx.price_dollars(e.ticket_price)}"
    return " ".join(
        [
            f"{p.name} saw a poster for the {e.title} at the {e.venue} in {e.city}.",
            f"It was on {tx.date_weekday(e.date)}, starting at {e.start_time}, and {e.organizer} was organising it.",
            f"{price}.",
            f"{p.first_name} asked {friend.first_name} to come along, and they met outside the {e.venue} at {e.start_time}.",
            rng.choice(
                (
                    "The evening was a great success.",
                    "It was crowded, but they found two seats at the back.",
                    "They talked about it for weeks afterwards.",
                )
            ),
        ]
    )


def _meeting_story(rng: random.Random, world: World) -> str:
    m = world.make_meeting(rng)
    end = (
        dt.datetime.fromisoformat(f"{m.date}T{m.start_time}") + dt.timedelta(minutes=m.duration_minutes)
    ).strftime("%H:%M")
    return " ".join(
        [
            f"{m.organizer} asked {m.attendee} to meet in {m.city} on {tx.date_long(m.date)}.",
            f"They met at {m.start_time} and talked for {m.duration_minutes} minutes, until {end}.",
            rng.choice(
                (
                    "They agreed to meet again soon.",
                    "Afterwards they went for lunch together.",
                    f"Then {m.attendee.split(' ')[0]} took the train home.",
                )
            ),
        ]
    )


def dialogue_doc(rng: random.Random, world: World) -> str:
    a, b = _pick2(rng, world.people)
    names = (a.first_name, b.first_name) if a.first_name != b.first_name else (a.name, b.name)
    topics = rng.sample(
        (_talk_trip, _talk_shopping, _talk_event, _talk_units, _talk_dates), rng.randint(1, 3)
    )
    lines = [
        f"{names[0]}: {rng.choice(('Hi', 'Hello', 'Hey'))} {names[1]}!",
        f"{names[1]}: Hi {names[0]}, how are you?",
    ]
    for topic in topics:
        lines.extend(f"{names[i % 2]}: {line}" for i, line in enumerate(topic(rng, world)))
    return "\n".join(lines)


def _talk_trip(rng: random.Random, world: World) -> list[str]:
    c = rng.choice(world.cities)
    return [
        f"I'm going to {c.name} next week.",
        f"Nice! Did you know {c.name} was founded in {c.founded}?",
        "No, I didn't. What should I eat there?",
        f"Try the {c.famous_dish}. Everyone in {c.name} loves it.",
        "And how warm is it there?",
        f"The average temperature is {format_number(c.avg_temp_c)} degrees Celsius.",
    ]


def _talk_shopping(rng: random.Random, world: World) -> list[str]:
    product = rng.choice(world.products)
    qty = rng.randint(2, 5)
    total = calculator(f"{qty} * {tx.price_plain(product.price)}")
    return [
        f"How much is the {product.name}?",
        f"It's {tx.price_dollars(product.price)}.",
        f"Then {qty} of them cost {total} dollars, right?",
        f"Exactly, {qty} times {tx.price_plain(product.price)} is {total}.",
    ]


def _talk_event(rng: random.Random, world: World) -> list[str]:
    e = world.make_event(rng)
    return [
        f"Are you coming to the {e.title}?",
        "When is it?",
        f"On {tx.date_long(e.date)} at {e.start_time}, at the {e.venue} in {e.city}.",
        "Who is organising it?" if rng.random() < 0.5 else "How much are the tickets?",
        f"{e.organizer} is."
        if rng.random() < 0.5
        else ("It's free." if e.ticket_price == 0 else f"Tickets are {tx.price_dollars(e.ticket_price)}."),
    ]


def _talk_units(rng: random.Random, world: World) -> list[str]:
    unit_from, unit_to, value = _unit_pair(rng)
    result, v = format_number(convert_value(value, unit_from, unit_to)), format_number(value)
    return [
        f"How much is {v} {_UNIT_WORDS[unit_from]} in {_UNIT_WORDS[unit_to]}?",
        f"{v} {_UNIT_WORDS[unit_from]} is {result} {_UNIT_WORDS[unit_to]}.",
    ]


def _talk_dates(rng: random.Random, world: World) -> list[str]:
    date = world.random_date(rng).isoformat()
    n = rng.randint(2, 30)
    later = add_days(date, n)
    return [
        f"What day of the week is {tx.date_long(date)}?",
        f"It's a {weekday(date)}.",
        f"And {n} days later?",
        f"That would be {tx.date_long(later)}, a {weekday(later)}.",
    ]


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def json_doc(rng: random.Random, world: World) -> str:
    kind = rng.choice(("city", "person", "product", "order", "event", "meeting"))
    count = 1 if rng.random() < 0.7 else rng.randint(2, 4)
    records = [_json_record(kind, rng, world) for _ in range(count)]
    data: Any = records[0] if count == 1 else records
    if rng.random() < 0.15:
        data = {"type": kind, "count": count, "items": records}
    style = rng.random()
    if style < 0.6:
        return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))
    if style < 0.85:
        return json.dumps(data, ensure_ascii=False, indent=2)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _json_record(kind: str, rng: random.Random, world: World) -> dict[str, Any]:
    if kind == "city":
        return record_dict(rng.choice(world.cities))
    if kind == "person":
        return record_dict(rng.choice(world.people))
    if kind == "product":
        return record_dict(rng.choice(world.products))
    if kind == "order":
        return record_dict(world.make_order(rng))
    if kind == "event":
        return record_dict(world.make_event(rng))
    return record_dict(world.make_meeting(rng))


# --------------------------------------------------------------------------------------------
# Arithmetic, units, calendar
# --------------------------------------------------------------------------------------------


def arithmetic_doc(rng: random.Random, world: World) -> str:
    return "\n".join(_arithmetic_line(rng) for _ in range(rng.randint(5, 15)))


def _arithmetic_line(rng: random.Random) -> str:
    a, b, c = rng.randint(0, 999), rng.randint(1, 999), rng.randint(2, 12)
    if rng.random() < 0.4:
        a, b = rng.randint(0, 20), rng.randint(1, 20)
    shape = rng.randrange(9)
    if shape == 0:
        return f"{a} + {b} = {calculator(f'{a} + {b}')}"
    if shape == 1:
        return f"{a} - {b} = {calculator(f'{a} - {b}')}"
    if shape == 2:
        return f"{a} * {b} = {calculator(f'{a} * {b}')}"
    if shape == 3:
        return f"{a} / {b} = {calculator(f'{a} / {b}')}"
    if shape == 4:
        return f"{c} ** 2 = {calculator(f'{c} ** 2')}"
    if shape == 5:
        return f"({a} + {b}) * {c} = {calculator(f'({a} + {b}) * {c}')}"
    if shape == 6:
        return f"The sum of {a} and {b} is {calculator(f'{a} + {b}')}."
    if shape == 7:
        return f"{a} times {c} equals {calculator(f'{a} * {c}')}."
    x = format_number(rng.randint(1, 9999) / 100)
    return f"What is {x} * {c}? {x} * {c} = {calculator(f'{x} * {c}')}."


def _unit_pair(rng: random.Random) -> tuple[str, str, int | float]:
    """Two units of one dimension within a factor of 1000 of each other (no "58 mm is 0.0001
    km"), and a value in a sensible range for them."""
    group = rng.choice(_UNIT_GROUPS)
    while True:
        unit_from, unit_to = _pick2(rng, group)
        ratio = 1.0 if group[0] == "C" else convert_value(1, unit_from, unit_to)
        if 1e-3 <= ratio <= 1e3:
            break
    if unit_from == "K":
        return unit_from, unit_to, rng.randint(230, 380)
    if unit_from in ("C", "F"):
        return unit_from, unit_to, rng.randint(-30, 110)
    value: int | float = rng.randint(1, 500) if rng.random() < 0.7 else rng.randint(1, 999) / 10
    return unit_from, unit_to, value


def units_doc(rng: random.Random, world: World) -> str:
    lines = []
    for _ in range(rng.randint(4, 10)):
        unit_from, unit_to, value = _unit_pair(rng)
        result = format_number(convert_value(value, unit_from, unit_to))
        v = format_number(value)
        lines.append(
            rng.choice(
                (
                    f"{v} {unit_from} is {result} {unit_to}.",
                    f"{v} {_UNIT_WORDS[unit_from]} is {result} {_UNIT_WORDS[unit_to]}.",
                    f"{v} {_UNIT_WORDS[unit_from]} = {result} {_UNIT_WORDS[unit_to]}",
                    f"Converting {v} {unit_from} to {unit_to} gives {result} {unit_to}.",
                )
            )
        )
    return "\n".join(lines)


def calendar_doc(rng: random.Random, world: World) -> str:
    lines = []
    for _ in range(rng.randint(4, 10)):
        date = world.random_date(rng).isoformat()
        n = rng.randint(1, 120)
        shape = rng.randrange(7)
        if shape == 0:
            lines.append(f"{tx.number_word(n).capitalize()} days after {date} is {add_days(date, n)}.")
        elif shape == 1:
            lines.append(f"{n} days before {date} was {add_days(date, -n)}.")
        elif shape == 2:
            lines.append(f"{date} is a {weekday(date)}.")
        elif shape == 3:
            end = add_days(date, n)
            lines.append(f"There are {days_between(date, end)} days between {date} and {end}.")
        elif shape == 4:
            lines.append(
                rng.choice(
                    (
                        f"{tx.date_long(date)} is written {date}.",
                        f"{tx.date_day_month(date)} is {date} in YYYY-MM-DD form.",
                        f"{tx.date_weekday(date)} is {date}.",
                    )
                )
            )
        elif shape == 5:
            lines.append(
                f"The day after {date} is {add_days(date, 1)}, and the day before is {add_days(date, -1)}."
            )
        else:
            time = world.random_time(rng, 0, 23)
            lines.append(f"{time} is {tx.time_12h(time)}.")
    return "\n".join(lines)


DOC_MAKERS: dict[str, Callable[[random.Random, World], str]] = {
    "city": city_doc,
    "country": country_doc,
    "person": person_doc,
    "order": record_doc("order"),
    "event": record_doc("event"),
    "meeting": record_doc("meeting"),
    "contact": record_doc("contact"),
    "story": story_doc,
    "dialogue": dialogue_doc,
    "json": json_doc,
    "arithmetic": arithmetic_doc,
    "units": units_doc,
    "calendar": calendar_doc,
}


def build_split(world: World, split: str, seed: int = 0) -> list[dict[str, str]]:
    """Rows ``{"kind", "text"}`` of one split, each kind filled to its share, then shuffled."""
    rng = random.Random(f"corpus:{seed}:{split}")
    rows: list[dict[str, str]] = []
    for kind, share in KIND_SHARES.items():
        budget = int(share * TARGET_CHARS[split])
        used = 0
        make = DOC_MAKERS[kind]
        while used < budget:
            text = make(rng, world)
            rows.append({"kind": kind, "text": text})
            used += len(text)
    rng.shuffle(rows)
    return rows
