"""Structured extraction: short natural-language text -> one JSON object that follows a schema.

The task
    Four record types (``order``, ``event``, ``contact``, ``meeting``), each with a JSON Schema
    (draft 2020-12, ``additionalProperties: false``, every field required, dates as
    ``YYYY-MM-DD`` strings with a pattern, integers for counts). The input is a text about one
    record; the answer is the record as JSON.

Template families, and why test uses unseen ones
    Each record type is written in 10 *families* of phrasing (a receipt, a chat message, a log
    line, an e-mail...). Families ``0-6`` of each type feed train and val; families ``7-9`` appear
    only in test. Scoring test on phrasings the model never saw measures whether it learned to
    *extract* rather than to memorise where each field sits in a template. Test families also use
    surface forms that train does not (``the 5th of March, 2024``, ``05.03.2024``, CSV).

Rows (``data/extraction/{train,val,test}.jsonl``)
    ``{"id": str, "record_type": str, "family": str, "text": str, "target": {...}}``; ``target``
    keys are in schema order. ``data/extraction/schemas.json`` maps record type -> schema.

Canonical answer
    :func:`canonical_json` is *the* rendering of a target: keys in schema order,
    ``json.dumps(..., ensure_ascii=False, separators=(", ", ": "))``. Training on one rendering
    keeps a small model from spending capacity on formatting choices, and
    :func:`extraction_messages` uses it for every assistant turn.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lfm_helpers.data import text as tx
from lfm_helpers.data.world import Event, Meeting, Order, Person, World, record_dict

RECORD_TYPES: tuple[str, ...] = ("order", "event", "contact", "meeting")
SPLIT_SIZES: dict[str, int] = {"train": 3000, "val": 200, "test": 300}
N_TRAIN_FAMILIES = 7
"""Families with index < 7 are train/val families; the rest are test-only."""

_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "YYYY-MM-DD"}
_TIME = {"type": "string", "pattern": r"^\d{2}:\d{2}$", "description": "HH:MM, 24-hour clock"}
_STR = {"type": "string", "minLength": 1}


def _schema(record_type: str, description: str, properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": record_type,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "order": _schema(
        "order",
        "One customer order of one product.",
        {
            "order_id": {"type": "string", "pattern": r"^ORD-\d{5}$"},
            "customer": _STR,
            "product": _STR,
            "quantity": {"type": "integer", "minimum": 1},
            "unit_price": {"type": "number", "minimum": 0},
            "date": _DATE,
            "ship_to_city": _STR,
            "express": {"type": "boolean"},
        },
    ),
    "event": _schema(
        "event",
        "A public event; ticket_price is 0 when entry is free.",
        {
            "title": _STR,
            "venue": _STR,
            "city": _STR,
            "date": _DATE,
            "start_time": _TIME,
            "ticket_price": {"type": "number", "minimum": 0},
            "organizer": _STR,
        },
    ),
    "contact": _schema(
        "contact",
        "A person's contact details.",
        {
            "name": _STR,
            "age": {"type": "integer", "minimum": 0},
            "city": _STR,
            "job": _STR,
            "email": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$"},
            "phone": _STR,
        },
    ),
    "meeting": _schema(
        "meeting",
        "A meeting between two people.",
        {
            "organizer": _STR,
            "attendee": _STR,
            "date": _DATE,
            "start_time": _TIME,
            "duration_minutes": {"type": "integer", "minimum": 1},
            "city": _STR,
        },
    ),
}


def canonical_json(target: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    """The one rendering of a target used in training and evaluation: keys in the schema's
    ``properties`` order (unknown keys last, sorted), ``", "`` and ``": "`` separators."""
    order = list(schema.get("properties", {}))
    keys = [k for k in order if k in target] + sorted(k for k in target if k not in order)
    return json.dumps({k: target[k] for k in keys}, ensure_ascii=False, separators=(", ", ": "))


def _type_hint(spec: Mapping[str, Any]) -> str:
    if "pattern" in spec and "description" in spec:
        return f"{spec['type']}, {spec['description']}"
    return str(spec["type"])


def schema_prompt(record_type: str, schema: Mapping[str, Any]) -> str:
    """The system instruction for one record type: the field list with types, in schema order.

    A field list is a fraction of the tokens of the full schema, which matters for a model with
    a short context, and it names exactly what the answer must contain.
    """
    fields = ", ".join(f"{name} ({_type_hint(spec)})" for name, spec in schema["properties"].items())
    return (
        f"Extract the {record_type} from the user's text. Reply with one JSON object with exactly "
        f"these fields: {fields}."
    )


def extraction_messages(
    row: Mapping[str, Any], schemas: Mapping[str, Mapping[str, Any]], with_answer: bool = True
) -> list[dict[str, str]]:
    """The chat for one extraction row: system (field list), user (text), assistant (canonical
    JSON of the target; left out when ``with_answer`` is false, for generation at eval time)."""
    schema = schemas[row["record_type"]]
    messages = [
        {"role": "system", "content": schema_prompt(row["record_type"], schema)},
        {"role": "user", "content": row["text"]},
    ]
    if with_answer:
        messages.append({"role": "assistant", "content": canonical_json(row["target"], schema)})
    return messages


# --------------------------------------------------------------------------------------------
# Template families
# --------------------------------------------------------------------------------------------

Renderer = Callable[[random.Random, Any], str]


@dataclass(frozen=True)
class Family:
    """One way of phrasing a record type; ``test_only`` families never feed train or val."""

    name: str
    record_type: str
    render: Renderer
    test_only: bool


def _shipping(express: bool, rng: random.Random) -> str:
    return (
        rng.choice(("express", "express delivery"))
        if express
        else rng.choice(("standard", "standard delivery"))
    )


# -- order ------------------------------------------------------------------------------------


def _order_confirmation(rng: random.Random, o: Order) -> str:
    verb = rng.choice(("bought", "ordered", "purchased"))
    return (
        f"Order {o.order_id} confirmed. {o.customer} {verb} {o.quantity} x {o.product} at "
        f"{tx.price_dollars(o.unit_price)} each on {o.date}. Shipping: "
        f"{'express' if o.express else 'standard'} to {o.ship_to_city}."
    )


def _order_customer_note(rng: random.Random, o: Order) -> str:
    ship = "with express shipping" if o.express else "with regular shipping"
    return (
        f"{rng.choice(('Hi', 'Hello'))}, this is {o.customer}. On {tx.date_long(o.date)} I ordered "
        f"{tx.number_word(o.quantity)} {tx.plural(o.product, o.quantity)} ({tx.price_plain(o.unit_price)} "
        f"dollars each), order number {o.order_id}. Please send them to {o.ship_to_city} {ship}."
    )


def _order_receipt(rng: random.Random, o: Order) -> str:
    lines = [
        rng.choice(("RECEIPT", "Receipt", "ORDER SUMMARY")),
        f"Order: {o.order_id}",
        f"Customer: {o.customer}",
        f"Item: {o.product}",
        f"Qty: {o.quantity}",
        f"Unit price: {tx.price_dollars(o.unit_price)}",
        f"Total: {tx.price_dollars(o.total)}",
        f"Date: {o.date}",
        f"Ship to: {o.ship_to_city}",
        f"Shipping: {'Express' if o.express else 'Standard'}",
    ]
    return "\n".join(lines)


def _order_support_ticket(rng: random.Random, o: Order) -> str:
    return (
        f"Support ticket: customer {o.customer} asks about order {o.order_id}, placed on "
        f"{tx.date_day_month(o.date)}, for {o.quantity} units of {o.product} priced at "
        f"{tx.price_dollars(o.unit_price)} per unit. It ships to {o.ship_to_city} with "
        f"{_shipping(o.express, rng)}."
    )


def _order_log(rng: random.Random, o: Order) -> str:
    return (
        f'[{o.date}] order={o.order_id} customer="{o.customer}" item="{o.product}" qty={o.quantity} '
        f'price={tx.price_plain(o.unit_price)} dest="{o.ship_to_city}" express={"yes" if o.express else "no"}'
    )


def _order_narrative(rng: random.Random, o: Order) -> str:
    ship = "and paid extra for express shipping" if o.express else "with standard shipping"
    return (
        f"{o.customer} from {o.ship_to_city} placed order {o.order_id} on {tx.date_long(o.date)}: "
        f"{o.quantity} x {o.product} for {tx.price_dollars(o.unit_price)} apiece, {ship}."
    )


def _order_email(rng: random.Random, o: Order) -> str:
    ship = "by express delivery" if o.express else "by standard delivery"
    return (
        f"Subject: Your order {o.order_id}\n\nDear {o.customer},\nthank you for ordering {o.quantity} x "
        f"{o.product} ({tx.price_dollars(o.unit_price)} each) on {tx.date_weekday(o.date)}. "
        f"It will be shipped to {o.ship_to_city} {ship}.\n{rng.choice(('Kind regards', 'Best wishes'))}, the shop"
    )


def _order_sms(rng: random.Random, o: Order) -> str:
    return (
        f"{o.order_id}: {o.quantity}x {o.product} @ {tx.price_plain(o.unit_price)} USD, {tx.date_dotted(o.date)}, "
        f"{o.customer} -> {o.ship_to_city}, {'EXPRESS' if o.express else 'std'}"
    )


def _order_question(rng: random.Random, o: Order) -> str:
    ship = "express" if o.express else "standard"
    return (
        f"Can you check order {o.order_id}? It's {o.customer}'s purchase of {tx.number_word(o.quantity)} "
        f"{o.product} from {tx.date_ordinal(o.date)}; each one cost {tx.price_plain(o.unit_price)} dollars "
        f"and it should go to {o.ship_to_city} via {ship} shipping."
    )


def _order_csv(rng: random.Random, o: Order) -> str:
    return (
        "id,customer,item,qty,price_usd,date,city,shipping\n"
        f"{o.order_id},{o.customer},{o.product},{o.quantity},{tx.price_plain(o.unit_price)},{o.date},"
        f"{o.ship_to_city},{'express' if o.express else 'standard'}"
    )


# -- event ------------------------------------------------------------------------------------


def _ticket(price: float, free: str, paid: str) -> str:
    return free if price == 0 else paid


def _event_announcement(rng: random.Random, e: Event) -> str:
    tickets = _ticket(e.ticket_price, "Entry is free.", f"Tickets cost {tx.price_dollars(e.ticket_price)}.")
    return (
        f"{rng.choice(('Join us for', 'Come to', 'Save the date for'))} the {e.title} at {e.venue} in {e.city} "
        f"on {tx.date_long(e.date)} at {e.start_time}. {tickets} Organised by {e.organizer}."
    )


def _event_listing(rng: random.Random, e: Event) -> str:
    return "\n".join(
        [
            e.title,
            f"Where: {e.venue}, {e.city}",
            f"When: {e.date}, {e.start_time}",
            f"Tickets: {_ticket(e.ticket_price, 'free', tx.price_dollars(e.ticket_price))}",
            f"Organizer: {e.organizer}",
        ]
    )


def _event_invitation(rng: random.Random, e: Event) -> str:
    admission = _ticket(e.ticket_price, "free", f"{tx.price_plain(e.ticket_price)} dollars")
    return (
        f"Dear friends, {e.organizer} warmly invites you to the {e.title}, held at {e.venue} ({e.city}) on "
        f"{tx.date_weekday(e.date)}, starting at {tx.time_12h(e.start_time)}. Admission: {admission}."
    )


def _event_news(rng: random.Random, e: Event) -> str:
    tickets = _ticket(e.ticket_price, "entry is free", f"tickets are {tx.price_dollars(e.ticket_price)}")
    return (
        f"{e.city}: The {e.title} {rng.choice(('returns to', 'comes to'))} {e.venue} on {tx.date_day_month(e.date)}. "
        f"Doors open at {e.start_time}, and {tickets}. The event is organised by {e.organizer}."
    )


def _event_chat(rng: random.Random, e: Event) -> str:
    tickets = _ticket(e.ticket_price, "free entry", f"tickets {tx.price_dollars(e.ticket_price)}")
    return (
        f"{rng.choice(('hey!', 'hi all,', 'heads up:'))} {e.organizer} is running the {e.title} at {e.venue} in "
        f"{e.city}, {e.date} at {tx.time_12h(e.start_time)}. {tickets}, {rng.choice(('u coming?', 'who is in?'))}"
    )


def _event_calendar(rng: random.Random, e: Event) -> str:
    return "\n".join(
        [
            "BEGIN:EVENT",
            f"SUMMARY:{e.title}",
            f"LOCATION:{e.venue}, {e.city}",
            f"DATE:{e.date}",
            f"TIME:{e.start_time}",
            f"PRICE:{tx.price_plain(e.ticket_price)}",
            f"ORGANIZER:{e.organizer}",
            "END:EVENT",
        ]
    )


def _event_preview(rng: random.Random, e: Event) -> str:
    tickets = _ticket(
        e.ticket_price, "entry costs nothing", f"a ticket is {tx.price_dollars(e.ticket_price)}"
    )
    return (
        f"Next up on {tx.date_long(e.date)}: {e.organizer} presents the {e.title}. It starts at {e.start_time} "
        f"at {e.venue}, {e.city}; {tickets}."
    )


def _event_radio(rng: random.Random, e: Event) -> str:
    tickets = _ticket(
        e.ticket_price,
        "it's free for everyone",
        f"it costs {tx.price_plain(e.ticket_price)} dollars at the door",
    )
    return (
        f"This is your weekend guide! On {tx.date_ordinal(e.date)}, at {tx.time_12h(e.start_time)}, {e.venue} in "
        f"{e.city} hosts the {e.title}. It's put together by {e.organizer}, and {tickets}."
    )


def _event_poster(rng: random.Random, e: Event) -> str:
    price = _ticket(e.ticket_price, "FREE", tx.price_dollars(e.ticket_price))
    return (
        f"*** {e.title} *** {e.venue} | {e.city} *** {tx.date_dotted(e.date)} | {e.start_time} *** {price} "
        f"*** presented by {e.organizer}"
    )


def _event_question(rng: random.Random, e: Event) -> str:
    tickets = _ticket(e.ticket_price, "it's free", f"tickets are {tx.price_plain(e.ticket_price)} USD")
    return (
        f"Is anyone going to the {e.title}? {e.organizer} told me it's at {e.venue} in {e.city} on "
        f"{tx.date_weekday(e.date)} from {tx.time_12h(e.start_time)}, and {tickets}."
    )


# -- contact ----------------------------------------------------------------------------------


def _contact_intro(rng: random.Random, p: Person) -> str:
    return (
        f"{rng.choice(('Hi', 'Hello'))}, I'm {p.name}. I'm {p.age} years old and work as a {p.job} in {p.city}. "
        f"Email me at {p.email} or call {p.phone}."
    )


def _contact_card(rng: random.Random, p: Person) -> str:
    return "\n".join(
        [
            f"Name: {p.name}",
            f"Age: {p.age}",
            f"City: {p.city}",
            f"Occupation: {p.job}",
            f"Email: {p.email}",
            f"Phone: {p.phone}",
        ]
    )


def _contact_third_person(rng: random.Random, p: Person) -> str:
    return f"{p.name} ({p.age}) is a {p.job} living in {p.city}. Contact: {p.email}, {p.phone}."


def _contact_signature(rng: random.Random, p: Person) -> str:
    return (
        f"{rng.choice(('Best regards', 'Cheers', 'Thanks'))},\n{p.name}, {p.age}\n{p.job.capitalize()}, {p.city}\n"
        f"Tel: {p.phone}\nMail: {p.email}"
    )


def _contact_form(rng: random.Random, p: Person) -> str:
    return f"name={p.name}; age={p.age}; city={p.city}; job={p.job}; email={p.email}; phone={p.phone}"


def _contact_referral(rng: random.Random, p: Person) -> str:
    return (
        f"You should talk to {p.name}, a {p.age}-year-old {p.job} from {p.city}. "
        f"Their number is {p.phone} and their email is {p.email}."
    )


def _contact_directory(rng: random.Random, p: Person) -> str:
    first, last = p.name.split(" ")
    return f"{last}, {first}: {p.job}, {p.city}. Age {p.age}. Tel. {p.phone}. E-mail: {p.email}."


def _contact_voicemail(rng: random.Random, p: Person) -> str:
    return (
        f"Hello, this message is from {p.name}, calling from {p.city}. I'm a {p.job}, {p.age} years old. "
        f"Please ring me back on {p.phone} or write to {p.email}."
    )


def _contact_profile(rng: random.Random, p: Person) -> str:
    return (
        f"About me: {p.age}, {p.job}, based in {p.city}. I go by {p.name}. Reach out: {p.email} / {p.phone}"
    )


def _contact_note(rng: random.Random, p: Person) -> str:
    return f"met {p.name} today - {p.job}, lives in {p.city}, {p.age}y. phone {p.phone}, mail {p.email}"


# -- meeting ----------------------------------------------------------------------------------


def _meeting_invite(rng: random.Random, m: Meeting) -> str:
    return (
        f"{m.organizer} invited {m.attendee} to a {m.duration_minutes}-minute meeting in {m.city} on "
        f"{tx.date_long(m.date)} at {m.start_time}."
    )


def _meeting_calendar(rng: random.Random, m: Meeting) -> str:
    return "\n".join(
        [
            rng.choice(("Meeting", "Appointment")),
            f"Organizer: {m.organizer}",
            f"With: {m.attendee}",
            f"Date: {m.date}",
            f"Start: {m.start_time}",
            f"Duration: {m.duration_minutes} min",
            f"City: {m.city}",
        ]
    )


def _meeting_email(rng: random.Random, m: Meeting) -> str:
    return (
        f"Hi {m.attendee},\ncould we meet on {tx.date_weekday(m.date)} at {tx.time_12h(m.start_time)} in {m.city}? "
        f"I'd need about {m.duration_minutes} minutes.\nThanks, {m.organizer}"
    )


def _meeting_chat(rng: random.Random, m: Meeting) -> str:
    return (
        f"{m.organizer}: {m.attendee}, are you free on {m.date} at {m.start_time}? "
        f"{m.duration_minutes} min, here in {m.city}."
    )


def _meeting_minutes(rng: random.Random, m: Meeting) -> str:
    return (
        f"Scheduled: {m.organizer} and {m.attendee}, {m.city}, {tx.date_day_month(m.date)}, {m.start_time}, "
        f"{m.duration_minutes} minutes."
    )


def _meeting_assistant(rng: random.Random, m: Meeting) -> str:
    return (
        f"Please book {m.duration_minutes} minutes for {m.organizer} with {m.attendee} on {tx.date_long(m.date)}, "
        f"starting {tx.time_12h(m.start_time)}, in {m.city}."
    )


def _meeting_reminder(rng: random.Random, m: Meeting) -> str:
    return (
        f"Reminder: {m.attendee} meets {m.organizer} in {m.city} on {m.date} at {m.start_time}. "
        f"Planned length: {m.duration_minutes} minutes. Organizer: {m.organizer}."
    )


def _meeting_voice(rng: random.Random, m: Meeting) -> str:
    return (
        f"Okay so {m.organizer} wants to see {m.attendee} on {tx.date_ordinal(m.date)}, {tx.time_12h(m.start_time)}, "
        f"over in {m.city}, for {tx.duration_words(m.duration_minutes)}."
    )


def _meeting_compact(rng: random.Random, m: Meeting) -> str:
    return f"{tx.date_dotted(m.date)} {m.start_time} ({m.duration_minutes}m) {m.organizer} w/ {m.attendee} @ {m.city}"


def _meeting_request(rng: random.Random, m: Meeting) -> str:
    return (
        f"Would {m.attendee} be able to meet {m.organizer} in {m.city}? Proposed: {tx.date_weekday(m.date)}, "
        f"{tx.time_12h(m.start_time)}, {m.duration_minutes} minutes."
    )


_RENDERERS: dict[str, tuple[tuple[str, Renderer], ...]] = {
    "order": (
        ("confirmation", _order_confirmation),
        ("customer_note", _order_customer_note),
        ("receipt", _order_receipt),
        ("support_ticket", _order_support_ticket),
        ("log_line", _order_log),
        ("narrative", _order_narrative),
        ("email", _order_email),
        ("sms", _order_sms),
        ("question", _order_question),
        ("csv", _order_csv),
    ),
    "event": (
        ("announcement", _event_announcement),
        ("listing", _event_listing),
        ("invitation", _event_invitation),
        ("news", _event_news),
        ("chat", _event_chat),
        ("calendar", _event_calendar),
        ("preview", _event_preview),
        ("radio", _event_radio),
        ("poster", _event_poster),
        ("question", _event_question),
    ),
    "contact": (
        ("intro", _contact_intro),
        ("card", _contact_card),
        ("third_person", _contact_third_person),
        ("signature", _contact_signature),
        ("form", _contact_form),
        ("referral", _contact_referral),
        ("directory", _contact_directory),
        ("voicemail", _contact_voicemail),
        ("profile", _contact_profile),
        ("note", _contact_note),
    ),
    "meeting": (
        ("invite", _meeting_invite),
        ("calendar", _meeting_calendar),
        ("email", _meeting_email),
        ("chat", _meeting_chat),
        ("minutes", _meeting_minutes),
        ("assistant", _meeting_assistant),
        ("reminder", _meeting_reminder),
        ("voice", _meeting_voice),
        ("compact", _meeting_compact),
        ("request", _meeting_request),
    ),
}

FAMILIES: tuple[Family, ...] = tuple(
    Family(f"{record_type}.{name}", record_type, render, test_only=i >= N_TRAIN_FAMILIES)
    for record_type in RECORD_TYPES
    for i, (name, render) in enumerate(_RENDERERS[record_type])
)
"""Every family, record types in :data:`RECORD_TYPES` order, train/val families first."""


def families_for(split: str, record_type: str | None = None) -> tuple[Family, ...]:
    """The families a split draws from: train/val -> the first 7 of each type, test -> the rest."""
    test = split == "test"
    return tuple(
        f for f in FAMILIES if f.test_only == test and (record_type is None or f.record_type == record_type)
    )


def make_record(world: World, record_type: str, rng: random.Random) -> Any:
    """A fresh record of ``record_type`` drawn from the world."""
    if record_type == "order":
        return world.make_order(rng)
    if record_type == "event":
        return world.make_event(rng)
    if record_type == "meeting":
        return world.make_meeting(rng)
    if record_type == "contact":
        return rng.choice(world.people)
    raise ValueError(f"unknown record type {record_type!r}; known: {', '.join(RECORD_TYPES)}")


def make_example(world: World, rng: random.Random, family: Family) -> tuple[str, dict[str, Any]]:
    """``(text, target)`` for one new record phrased by ``family``."""
    record = make_record(world, family.record_type, rng)
    return family.render(rng, record), record_dict(record)


def build_split(
    world: World, split: str, seed: int = 0, exclude_texts: frozenset[str] = frozenset(),
    size: int | None = None,
) -> list[dict[str, Any]]:
    """The rows of one split; the record type cycles so types are balanced.

    ``exclude_texts`` (the train texts, when building val) keeps an evaluation split from
    containing a text the model was trained on word for word. ``size`` overrides
    :data:`SPLIT_SIZES`; a larger split starts with the rows of the smaller one.
    """
    rng = random.Random(f"extraction:{seed}:{split}")
    rows: list[dict[str, Any]] = []
    seen = set(exclude_texts)
    while len(rows) < (SPLIT_SIZES[split] if size is None else size):
        i = len(rows)
        record_type = RECORD_TYPES[i % len(RECORD_TYPES)]
        family = rng.choice(families_for(split, record_type))
        text, target = make_example(world, rng, family)
        if text in seen:
            continue
        seen.add(text)
        rows.append(
            {
                "id": f"extraction-{split}-{i:05d}",
                "record_type": record_type,
                "family": family.name,
                "text": text,
                "target": target,
            }
        )
    return rows
