"""A small, consistent, seeded world that every data set of the course draws from.

Tiny models learn facts only from their training text. If one document said a person lives in
Kessling and another said Velden, the model would learn noise; so all text (pretraining corpus,
extraction inputs, tool-use conversations) is written about *one* world built here from a seed:
40 fictional cities in 8 fictional countries, a few hundred people, products, venues. Facts are
fixed once the world is built, and records that happen at a moment (orders, events, meetings)
are drawn *from* it by factories that keep them consistent: an order ships to the customer's
city, an event takes place in its venue's city.

The cities and countries are invented so the course never teaches wrong facts about real places,
and so that a model has to learn (or look up, with the ``lookup_city`` tool) this world's facts
instead of reciting what a larger model memorised elsewhere.

Everything random comes from a ``random.Random`` seeded with a string (seeding with a string
hashes it with SHA-512, independent of ``PYTHONHASHSEED``), so a world is identical across runs,
processes and machines.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import asdict, dataclass
from typing import Any

# (country, dialling code, UTC offset in hours, email domain, its cities). Fixed data: the world's
# geography is part of the course text and must not move when the seed changes.
_GEOGRAPHY: tuple[tuple[str, str, int, str, tuple[str, ...]], ...] = (
    (
        "Norvale",
        "+281",
        1,
        "norvale.example",
        ("Aldenport", "Kessling", "Morrowick", "Tallbrook", "Vessford"),
    ),
    ("Calderra", "+284", 2, "calderra.example", ("Santoro", "Valmera", "Corvana", "Pellaro", "Ribaldo")),
    (
        "Belmora",
        "+286",
        0,
        "belmora.example",
        ("Haverlund", "Greywater", "Ashcombe", "Port Ellis", "Dunmere"),
    ),
    ("Ostrelia", "+291", 3, "ostrelia.example", ("Ostrova", "Zelenka", "Brasko", "Kolmar", "Dravina")),
    (
        "Quenmark",
        "+293",
        -5,
        "quenmark.example",
        ("Quenby", "Fairholt", "Millbrook", "Stonereach", "Cedar Falls"),
    ),
    ("Sarvenia", "+295", 5, "sarvenia.example", ("Sarvet", "Amberlee", "Tirana Nova", "Kasimir", "Oldmere")),
    (
        "Lundria",
        "+297",
        8,
        "lundria.example",
        ("Lundholm", "Brightwater", "Eastvik", "Norrhaven", "Silvberg"),
    ),
    (
        "Marovia",
        "+298",
        -3,
        "marovia.example",
        ("Marosa", "Puerto Lindo", "Casavel", "Arrecife Alto", "Belavista"),
    ),
)

_DISHES: tuple[str, ...] = (
    "smoked herring pie",
    "saffron rice with clams",
    "barley and mushroom soup",
    "honey rye bread",
    "lamb and apricot stew",
    "fried river trout",
    "buckwheat pancakes",
    "plum dumplings",
    "cabbage rolls",
    "roasted chestnut soup",
    "lemon almond cake",
    "spiced lentil stew",
    "grilled sardines",
    "potato and leek pie",
    "cheese and onion tart",
    "beetroot soup",
    "pepper and bean chili",
    "salted cod fritters",
    "apple and cinnamon strudel",
    "duck with cherries",
    "mussels in cider",
    "walnut bread",
    "pork and quince stew",
    "fig and goat cheese salad",
    "seaweed noodles",
    "coconut fish curry",
    "ginger pork buns",
    "mango sticky rice",
    "corn and pumpkin soup",
    "black bean stew",
    "grilled squid",
    "orange and olive salad",
    "venison and berry pie",
    "carrot and cumin soup",
    "chickpea flatbread",
    "pear and hazelnut tart",
    "baked aubergine",
    "shrimp and rice pot",
    "rosemary lamb skewers",
    "sweet potato bread",
)

_FIRST_NAMES: tuple[str, ...] = (
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Leo",
    "Maya",
    "Nils",
    "Olga",
    "Pablo",
    "Rosa",
    "Samuel",
    "Tara",
    "Umar",
    "Vera",
    "Walter",
    "Yara",
    "Zoe",
    "Adrian",
    "Bianca",
    "Carlos",
    "Dora",
    "Emil",
    "Frida",
    "Gustav",
    "Hanna",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Marco",
    "Nora",
    "Oscar",
    "Petra",
    "Quentin",
    "Rita",
    "Stefan",
    "Tomas",
    "Ulla",
    "Viktor",
    "Wanda",
    "Xavier",
    "Yusuf",
    "Zara",
)
_LAST_NAMES: tuple[str, ...] = (
    "Berg",
    "Costa",
    "Dahl",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Holm",
    "Ivanova",
    "Jensen",
    "Keller",
    "Lind",
    "Moreau",
    "Novak",
    "Olsen",
    "Petrov",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Unger",
    "Varga",
    "Weber",
    "Young",
    "Zeller",
    "Abara",
    "Brandt",
    "Castell",
    "Dorin",
    "Falk",
    "Grimm",
    "Hale",
    "Lorenz",
    "Marsh",
    "Nyberg",
    "Ortega",
    "Pike",
    "Reyes",
    "Stone",
    "Thorne",
    "Vale",
)
_JOBS: tuple[str, ...] = (
    "teacher",
    "nurse",
    "carpenter",
    "baker",
    "software developer",
    "librarian",
    "pharmacist",
    "architect",
    "electrician",
    "journalist",
    "chef",
    "accountant",
    "veterinarian",
    "photographer",
    "gardener",
    "pilot",
    "translator",
    "dentist",
    "mechanic",
    "musician",
    "engineer",
    "farmer",
    "lawyer",
    "florist",
    "tailor",
    "bus driver",
    "potter",
    "biologist",
    "painter",
    "plumber",
)

# (product noun, category, lowest price, highest price)
_PRODUCT_NOUNS: tuple[tuple[str, str, int, int], ...] = (
    ("mug", "kitchen", 6, 18),
    ("teapot", "kitchen", 18, 60),
    ("kettle", "kitchen", 25, 90),
    ("cutting board", "kitchen", 12, 40),
    ("salad bowl", "kitchen", 10, 35),
    ("desk lamp", "home", 20, 85),
    ("blanket", "home", 25, 120),
    ("cushion", "home", 12, 45),
    ("candle", "home", 5, 25),
    ("picture frame", "home", 8, 30),
    ("scarf", "clothing", 15, 70),
    ("raincoat", "clothing", 40, 160),
    ("wool hat", "clothing", 12, 40),
    ("backpack", "travel", 30, 140),
    ("water bottle", "travel", 8, 35),
    ("umbrella", "travel", 10, 45),
    ("notebook", "stationery", 3, 20),
    ("fountain pen", "stationery", 15, 120),
    ("sketchbook", "stationery", 6, 28),
    ("board game", "toys", 20, 75),
    ("jigsaw puzzle", "toys", 10, 35),
    ("kite", "toys", 12, 50),
    ("bicycle bell", "sports", 5, 20),
    ("yoga mat", "sports", 18, 70),
    ("tennis racket", "sports", 35, 180),
)
_COLOURS: tuple[str, ...] = ("red", "blue", "green", "yellow", "black", "white", "grey", "orange")

_VENUE_KINDS: tuple[tuple[str, int, int], ...] = (
    ("Hall", 200, 1500),
    ("Theatre", 150, 900),
    ("Gallery", 40, 250),
    ("Park", 500, 5000),
    ("Library", 30, 200),
    ("Club", 80, 400),
    ("Arena", 2000, 15000),
    ("Market", 100, 2000),
)
_VENUE_PREFIXES: tuple[str, ...] = (
    "Riverside",
    "Old Mill",
    "Harbour",
    "Lantern",
    "Oak Tree",
    "Granite",
    "Silver Street",
    "North Gate",
    "Willow",
    "Copper",
    "Lighthouse",
    "Orchard",
    "Station",
    "Meadow",
    "Clocktower",
    "Blue Door",
    "Foundry",
    "Garden",
    "Hilltop",
    "Market Square",
)

_EVENT_TOPICS: tuple[tuple[str, str], ...] = (
    ("Jazz", "Night"),
    ("Pottery", "Workshop"),
    ("Chess", "Open"),
    ("Poetry", "Evening"),
    ("Film", "Festival"),
    ("Food", "Fair"),
    ("Book", "Fair"),
    ("Photography", "Exhibition"),
    ("Folk Music", "Concert"),
    ("Science", "Talk"),
    ("Robotics", "Meetup"),
    ("Wine", "Tasting"),
    ("Dance", "Show"),
    ("Comedy", "Night"),
    ("Craft", "Market"),
    ("Choir", "Concert"),
    ("Startup", "Pitch Night"),
    ("Gardening", "Workshop"),
    ("History", "Lecture"),
    ("Cycling", "Race"),
)
_EVENT_ADJECTIVES: tuple[str, ...] = (
    "Spring",
    "Summer",
    "Autumn",
    "Winter",
    "Annual",
    "Grand",
    "Little",
    "Open-Air",
    "Midnight",
    "City",
)

DATE_START = dt.date(2023, 1, 1)
DATE_END = dt.date(2026, 12, 31)
MEETING_DURATIONS: tuple[int, ...] = (15, 20, 30, 45, 60, 90, 120)


@dataclass(frozen=True)
class City:
    """One row of the city table that ``lookup_city`` reads (``data/world/cities.json``)."""

    name: str
    country: str
    population: int
    founded: int
    area_km2: float
    elevation_m: int
    utc_offset: int
    avg_temp_c: float
    famous_dish: str


@dataclass(frozen=True)
class Person:
    """A resident of the world; ``city`` is the name of a :class:`City`."""

    name: str
    age: int
    city: str
    job: str
    email: str
    phone: str

    @property
    def first_name(self) -> str:
        return self.name.split(" ")[0]


@dataclass(frozen=True)
class Product:
    """Something people order; prices are in dollars."""

    name: str
    category: str
    price: float


@dataclass(frozen=True)
class Venue:
    """A place where events happen, in one city."""

    name: str
    city: str
    kind: str
    capacity: int


@dataclass(frozen=True)
class Order:
    """One order of one product; ships to the customer's city."""

    order_id: str
    customer: str
    product: str
    quantity: int
    unit_price: float
    date: str
    ship_to_city: str
    express: bool

    @property
    def total(self) -> float:
        return round(self.quantity * self.unit_price, 2)


@dataclass(frozen=True)
class Event:
    """A public event at a venue; ``ticket_price`` 0 means free entry."""

    title: str
    venue: str
    city: str
    date: str
    start_time: str
    ticket_price: float
    organizer: str


@dataclass(frozen=True)
class Meeting:
    """Two people meeting in the organizer's city."""

    organizer: str
    attendee: str
    date: str
    start_time: str
    duration_minutes: int
    city: str


def record_dict(record: Any) -> dict[str, Any]:
    """A record as a plain dict, fields in declaration order (the canonical key order)."""
    return asdict(record)


class World:
    """Everything that exists, built deterministically from ``seed``.

    Attributes are tuples sorted in a fixed order, and lookups go through dicts built from them,
    so iteration order never depends on hashing. Use the ``make_*`` factories with your own
    ``random.Random`` to draw consistent orders, events and meetings.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        rng = random.Random(f"world:{seed}")
        self.cities: tuple[City, ...] = self._build_cities(rng)
        self.city_by_name: dict[str, City] = {c.name: c for c in self.cities}
        self.countries: tuple[str, ...] = tuple(g[0] for g in _GEOGRAPHY)
        self.people: tuple[Person, ...] = self._build_people(rng, n=400)
        self.person_by_name: dict[str, Person] = {p.name: p for p in self.people}
        self.products: tuple[Product, ...] = self._build_products(rng, n=80)
        self.venues: tuple[Venue, ...] = self._build_venues(rng)
        self.residents: dict[str, tuple[Person, ...]] = {
            c.name: tuple(p for p in self.people if p.city == c.name) for c in self.cities
        }
        self.venues_in: dict[str, tuple[Venue, ...]] = {
            c.name: tuple(v for v in self.venues if v.city == c.name) for c in self.cities
        }

    # -- construction ---------------------------------------------------------------------

    @staticmethod
    def _build_cities(rng: random.Random) -> tuple[City, ...]:
        dishes = list(_DISHES)
        rng.shuffle(dishes)
        cities = []
        for country, _code, offset, _domain, names in _GEOGRAPHY:
            for name in names:
                cities.append(
                    City(
                        name=name,
                        country=country,
                        population=rng.randint(15, 2800) * 1000 + rng.randint(0, 999),
                        founded=rng.randint(780, 1890),
                        area_km2=round(rng.uniform(20, 950), 1),
                        elevation_m=rng.randint(2, 2400),
                        utc_offset=offset,
                        avg_temp_c=round(rng.uniform(-2, 27), 1),
                        famous_dish=dishes.pop(),
                    )
                )
        return tuple(cities)

    def _build_people(self, rng: random.Random, n: int) -> tuple[Person, ...]:
        names = [f"{first} {last}" for first in _FIRST_NAMES for last in _LAST_NAMES]
        chosen = rng.sample(names, n)
        country_info = {g[0]: g for g in _GEOGRAPHY}
        people = []
        for name in chosen:
            city = rng.choice(self.cities)
            _country, code, _offset, domain, _names = country_info[city.country]
            first, last = name.split(" ")
            people.append(
                Person(
                    name=name,
                    age=rng.randint(18, 84),
                    city=city.name,
                    job=rng.choice(_JOBS),
                    email=f"{first.lower()}.{last.lower()}@{domain}",
                    phone=f"{code} {rng.randint(200, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                )
            )
        return tuple(sorted(people, key=lambda p: p.name))

    @staticmethod
    def _build_products(rng: random.Random, n: int) -> tuple[Product, ...]:
        combos = [(colour, noun) for noun in _PRODUCT_NOUNS for colour in _COLOURS]
        products = []
        for colour, (noun, category, low, high) in rng.sample(combos, n):
            cents = rng.choice((0, 0, 50, 99, 95, 49, 25))
            products.append(
                Product(f"{colour} {noun}", category, round(rng.randint(low, high) + cents / 100, 2))
            )
        return tuple(sorted(products, key=lambda p: p.name))

    def _build_venues(self, rng: random.Random) -> tuple[Venue, ...]:
        names = [(prefix, kind) for prefix in _VENUE_PREFIXES for kind in _VENUE_KINDS]
        chosen = rng.sample(names, 2 * len(self.cities))
        venues = []
        for i, (prefix, (kind, low, high)) in enumerate(chosen):
            city = self.cities[i // 2]
            venues.append(
                Venue(f"{prefix} {kind}", city.name, kind.lower(), rng.randint(low, high) // 10 * 10)
            )
        return tuple(venues)

    # -- views -----------------------------------------------------------------------------

    def city_rows(self) -> list[dict[str, Any]]:
        """The city table as JSON-ready rows (what ``data/world/cities.json`` holds)."""
        return [record_dict(c) for c in self.cities]

    def cities_of(self, country: str) -> tuple[City, ...]:
        return tuple(c for c in self.cities if c.country == country)

    # -- factories -------------------------------------------------------------------------

    @staticmethod
    def random_date(rng: random.Random) -> dt.date:
        """A day between 2023-01-01 and 2026-12-31."""
        return DATE_START + dt.timedelta(days=rng.randint(0, (DATE_END - DATE_START).days))

    @staticmethod
    def random_time(rng: random.Random, first_hour: int = 8, last_hour: int = 21) -> str:
        """``HH:MM`` on the quarter hour."""
        return f"{rng.randint(first_hour, last_hour):02d}:{rng.choice((0, 15, 30, 45)):02d}"

    def make_order(self, rng: random.Random) -> Order:
        customer = rng.choice(self.people)
        product = rng.choice(self.products)
        return Order(
            order_id=f"ORD-{rng.randint(10000, 99999)}",
            customer=customer.name,
            product=product.name,
            quantity=rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 12)),
            unit_price=product.price,
            date=self.random_date(rng).isoformat(),
            ship_to_city=customer.city,
            express=rng.random() < 0.4,
        )

    def make_event(self, rng: random.Random) -> Event:
        venue = rng.choice(self.venues)
        topic, kind = rng.choice(_EVENT_TOPICS)
        locals_ = self.residents[venue.city] or self.people
        free = rng.random() < 0.15
        price = 0.0 if free else round(rng.randint(3, 60) + rng.choice((0.0, 0.0, 0.5, 0.99)), 2)
        return Event(
            title=f"{rng.choice(_EVENT_ADJECTIVES)} {topic} {kind}",
            venue=venue.name,
            city=venue.city,
            date=self.random_date(rng).isoformat(),
            start_time=self.random_time(rng, 9, 21),
            ticket_price=price,
            organizer=rng.choice(locals_).name,
        )

    def make_meeting(self, rng: random.Random) -> Meeting:
        organizer = rng.choice(self.people)
        attendee = rng.choice([p for p in self.people if p.name != organizer.name])
        return Meeting(
            organizer=organizer.name,
            attendee=attendee.name,
            date=self.random_date(rng).isoformat(),
            start_time=self.random_time(rng, 8, 18),
            duration_minutes=rng.choice(MEETING_DURATIONS),
            city=organizer.city,
        )


def build_world(seed: int = 0) -> World:
    """The course's world for ``seed`` (0 is the shipped one)."""
    return World(seed)
