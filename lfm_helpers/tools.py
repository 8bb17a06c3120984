"""Deterministic tools, and LFM2's Pythonic tool-call syntax.

An LFM2-style assistant does not run code: it writes a *tool call* as text, the runtime parses it,
runs the tool and hands the result back as a ``tool`` message. This module is that runtime for the
course, in three parts:

1. **The tools.** ``calculator``, ``convert_units``, ``add_days``, ``days_between``, ``weekday``
   and ``lookup_city``. Every one is a pure function of its arguments (``lookup_city`` of the
   shipped city table too), so a conversation written at data-generation time can be replayed and
   checked later: ``call_tool(name, arguments)`` must return exactly the ``tool`` message the data
   holds. Results are short strings; numbers go through :func:`format_number`, one rendering used
   by tools, corpus and answers alike, so a model can copy a result into its answer verbatim.
2. **Their schemas** in the OpenAI function format (``tool_schemas``), which a chat template
   renders into the system prompt so the model knows what it may call.
3. **The call syntax.** LFM2 writes calls as a Python list of keyword-argument calls between two
   special tokens::

       <|tool_call_start|>[convert_units(value=3.5, from_unit="km", to_unit="mi")]<|tool_call_end|>

   :func:`format_tool_calls` writes it; :func:`parse_tool_calls` reads it back with
   ``ast.parse(mode="eval")`` and ``ast.literal_eval`` only. Model output is untrusted text, so
   the parser never evaluates anything, accepts only plain names with literal keyword arguments,
   and turns every failure into a :class:`ToolCallParseError` whose ``position`` points at the
   offending character: a training-time verifier can then report *where* a small model's call
   went wrong, not just that it did.

The calculator evaluates arithmetic by walking the ``ast`` itself (numbers, ``+ - * / **``,
unary signs, parentheses) for the same reason: ``eval`` on model output would be a remote code
execution hole, and ``__import__('os')`` must be an error, not a shell.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from pathlib import Path
from typing import Any

TOOL_CALL_START = "<|tool_call_start|>"
TOOL_CALL_END = "<|tool_call_end|>"


class ToolError(Exception):
    """A tool was asked for something it cannot do: unknown tool, bad or missing arguments,
    division by zero, an unknown city... The message says which, in plain words."""


class ToolCallParseError(ValueError):
    """Text that should hold tool calls does not parse.

    ``position`` is a character offset into the text given to :func:`parse_tool_calls` (so
    ``text[position:]`` starts at, or just after, the problem); ``message`` says what was wrong.
    """

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position})")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class ToolCall:
    """One call: a tool name and its keyword arguments (JSON-compatible values).

    Frozen so a parsed call cannot be changed by accident after verification; note that the
    ``arguments`` dict itself makes instances unhashable.
    """

    name: str
    arguments: dict[str, Any] = dataclass_field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``{"name", "arguments"}`` form stored in the data files."""
        return {"name": self.name, "arguments": dict(self.arguments)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """Inverse of :meth:`to_dict`."""
        return cls(name=data["name"], arguments=dict(data["arguments"]))


# --------------------------------------------------------------------------------------------
# Number rendering shared by tools, corpus and answers
# --------------------------------------------------------------------------------------------


def format_number(value: float) -> str:
    """Render a number the one way this course does: at most 4 decimals, no trailing zeros,
    no exponent, ``-0`` as ``0``. ``7.0 -> "7"``, ``1/3 -> "0.3333"``, ``12.5 -> "12.5"``.

    One rendering everywhere (tool results, pretraining facts, final answers) means a tiny model
    sees every number written the same way and can copy a tool result into its answer.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"format_number expects a number, got {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot format non-finite number {value!r}")
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# --------------------------------------------------------------------------------------------
# calculator
# --------------------------------------------------------------------------------------------

_MAX_MAGNITUDE = 1e15  # keeps results printable without exponents and stops 9**9**9 early
_BINARY_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


def _quiet_parse(source: str) -> ast.Expression:
    """``ast.parse(mode="eval")`` with warnings silenced: model output like ``"\\d"`` or
    ``(1, 2)(3)`` makes Python warn, and the result must not depend on warning filters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source, mode="eval")


def _eval_arithmetic(node: ast.AST) -> float:
    """Evaluate an arithmetic ``ast`` node, refusing anything that is not a number or one of
    ``+ - * / **`` (names, calls, attributes, strings, comparisons...)."""
    if isinstance(node, ast.Expression):
        return _eval_arithmetic(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ToolError(f"calculator: only numbers are allowed, not {node.value!r}")
        if abs(node.value) > _MAX_MAGNITUDE:
            raise ToolError("calculator: number too large")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _eval_arithmetic(node.operand)
        return operand if isinstance(node.op, ast.UAdd) else -operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
        left, right = _eval_arithmetic(node.left), _eval_arithmetic(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ToolError("calculator: division by zero")
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or (left == 0 and right < 0)):
            raise ToolError("calculator: exponent out of range")
        try:
            result = _BINARY_OPS[type(node.op)](left, right)
        except OverflowError:
            raise ToolError("calculator: result too large") from None
        if isinstance(result, complex):
            raise ToolError("calculator: result is not a real number")
        if abs(result) > _MAX_MAGNITUDE:
            raise ToolError("calculator: result too large")
        return result
    if isinstance(node, (ast.Name, ast.Call, ast.Attribute)):
        raise ToolError("calculator: names and function calls are not allowed")
    raise ToolError(f"calculator: unsupported syntax ({type(node).__name__})")


def calculator(expression: str) -> str:
    """Evaluate ``+ - * / **`` arithmetic with parentheses; the result via :func:`format_number`.

    Integer arithmetic stays exact (``2 ** 10 -> "1024"``); any division gives a float.
    """
    if len(expression) > 200:
        raise ToolError("calculator: expression longer than 200 characters")
    try:
        tree = _quiet_parse(expression.strip())
    except (SyntaxError, ValueError) as exc:
        raise ToolError(f"calculator: cannot parse {expression!r}") from exc
    return format_number(_eval_arithmetic(tree))


# --------------------------------------------------------------------------------------------
# convert_units
# --------------------------------------------------------------------------------------------

# unit symbol -> (dimension, factor to the dimension's base unit). Temperature is affine and is
# handled separately. US customary volumes.
_LINEAR_UNITS: dict[str, tuple[str, float]] = {
    "mm": ("length", 0.001),
    "cm": ("length", 0.01),
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "in": ("length", 0.0254),
    "ft": ("length", 0.3048),
    "yd": ("length", 0.9144),
    "mi": ("length", 1609.344),
    "mg": ("mass", 0.001),
    "g": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "t": ("mass", 1_000_000.0),
    "oz": ("mass", 28.349523125),
    "lb": ("mass", 453.59237),
    "ml": ("volume", 0.001),
    "l": ("volume", 1.0),
    "cup": ("volume", 0.2365882365),
    "pt": ("volume", 0.473176473),
    "qt": ("volume", 0.946352946),
    "gal": ("volume", 3.785411784),
}
_TEMPERATURE_UNITS = ("C", "F", "K")
UNITS: tuple[str, ...] = tuple(_LINEAR_UNITS) + _TEMPERATURE_UNITS
"""Every unit symbol ``convert_units`` accepts, grouped by dimension."""


def unit_dimension(unit: str) -> str:
    """``"km" -> "length"``, ``"F" -> "temperature"``; :class:`ToolError` for an unknown unit."""
    if unit in _TEMPERATURE_UNITS:
        return "temperature"
    if unit in _LINEAR_UNITS:
        return _LINEAR_UNITS[unit][0]
    raise ToolError(f"convert_units: unknown unit {unit!r}; known units: {', '.join(UNITS)}")


def _to_kelvin(value: float, unit: str) -> float:
    return {"C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15, "K": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"C": value - 273.15, "F": (value - 273.15) * 9 / 5 + 32, "K": value}[unit]


def convert_value(value: float, from_unit: str, to_unit: str) -> float:
    """The converted number itself (unrounded); ``convert_units`` formats it."""
    dim_from, dim_to = unit_dimension(from_unit), unit_dimension(to_unit)
    if dim_from != dim_to:
        raise ToolError(f"convert_units: cannot convert {dim_from} ({from_unit}) to {dim_to} ({to_unit})")
    if dim_from == "temperature":
        return _from_kelvin(_to_kelvin(value, from_unit), to_unit)
    return value * _LINEAR_UNITS[from_unit][1] / _LINEAR_UNITS[to_unit][1]


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """``convert_units(12, "km", "mi") -> "7.4565 mi"``: the number and the target unit."""
    return f"{format_number(convert_value(value, from_unit, to_unit))} {to_unit}"


# --------------------------------------------------------------------------------------------
# calendar
# --------------------------------------------------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def parse_date(text: str) -> dt.date:
    """Strict ``YYYY-MM-DD``; anything else is a :class:`ToolError` (the model must normalise
    "March 5, 2024" itself, which is part of what the tool-use task teaches)."""
    if not isinstance(text, str) or len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ToolError(f"expected a date as YYYY-MM-DD, got {text!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ToolError(f"invalid date {text!r}: {exc}") from exc


def add_days(date: str, days: int) -> str:
    """``add_days("2024-03-25", 10) -> "2024-04-04"``; negative ``days`` go back in time."""
    try:
        return (parse_date(date) + dt.timedelta(days=days)).isoformat()
    except OverflowError as exc:
        raise ToolError("add_days: date out of range") from exc


def days_between(start: str, end: str) -> str:
    """Days from ``start`` to ``end`` (negative when ``end`` comes first), as a string."""
    return str((parse_date(end) - parse_date(start)).days)


def weekday(date: str) -> str:
    """``weekday("2024-07-04") -> "Thursday"``."""
    return WEEKDAYS[parse_date(date).weekday()]


# --------------------------------------------------------------------------------------------
# lookup_city
# --------------------------------------------------------------------------------------------

CITY_FIELDS: dict[str, str] = {
    "country": "",
    "population": "",
    "founded": "",
    "area_km2": " km2",
    "elevation_m": " m",
    "utc_offset": "",
    "avg_temp_c": " C",
    "famous_dish": "",
}
"""Fields ``lookup_city`` answers, with the unit suffix its result carries."""

CityTable = Mapping[str, Mapping[str, Any]]


def city_table_from_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Index the rows of ``cities.json`` by city name."""
    return {row["name"]: row for row in rows}


@lru_cache(maxsize=4)
def _load_city_table(path: str, mtime_ns: int) -> dict[str, Mapping[str, Any]]:
    """Cached per path and modification time, so a regenerated table is re-read."""
    with open(path, encoding="utf-8") as handle:
        return city_table_from_rows(json.load(handle))


def shipped_city_table() -> dict[str, Mapping[str, Any]]:
    """The city table from ``<data_dir>/world/cities.json``."""
    from lfm_helpers.paths import data_dir

    path = Path(data_dir()) / "world" / "cities.json"
    if not path.exists():
        raise ToolError(f"lookup_city: city table {path} is missing; run `python -m lfm_helpers data`")
    return _load_city_table(str(path), path.stat().st_mtime_ns)


def format_city_value(field_name: str, value: Any) -> str:
    """How ``lookup_city`` renders one field: numbers via :func:`format_number` plus the field's
    unit (``"412 m"``), the UTC offset as ``"UTC+2"``, text as is."""
    if field_name == "utc_offset":
        return f"UTC{value:+d}" if value else "UTC+0"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value) + CITY_FIELDS[field_name]
    return str(value)


def lookup_city(city: str, field: str, *, table: CityTable | None = None) -> str:
    """One fact about a city of the course's world: ``lookup_city("Kessling", "elevation_m")``.

    City names match case-insensitively. ``table`` defaults to the shipped ``cities.json``; data
    generation passes the in-memory world instead so it does not depend on files on disk.
    """
    table = shipped_city_table() if table is None else table
    if field not in CITY_FIELDS:
        raise ToolError(f"lookup_city: unknown field {field!r}; known fields: {', '.join(CITY_FIELDS)}")
    row = table.get(city)
    if row is None:
        matches = [r for name, r in table.items() if name.lower() == city.strip().lower()]
        if not matches:
            raise ToolError(f"lookup_city: unknown city {city!r}")
        row = matches[0]
    return format_city_value(field, row[field])


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A tool: its OpenAI-format schema pieces and the Python function behind it."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., str]

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-format schema ``{"name", "description", "parameters"}``."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def _params(properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "calculator",
            "Evaluate an arithmetic expression with numbers, + - * / ** and parentheses.",
            _params({"expression": {"type": "string", "description": 'e.g. "(3 + 4) * 2.5"'}}),
            calculator,
        ),
        Tool(
            "convert_units",
            "Convert a value between units of length, mass, temperature or volume.",
            _params(
                {
                    "value": {"type": "number", "description": "the amount to convert"},
                    "from_unit": {"type": "string", "enum": list(UNITS)},
                    "to_unit": {"type": "string", "enum": list(UNITS)},
                }
            ),
            convert_units,
        ),
        Tool(
            "add_days",
            "Add a number of days (negative to go back) to a date in YYYY-MM-DD format.",
            _params(
                {
                    "date": {"type": "string", "description": "YYYY-MM-DD"},
                    "days": {"type": "integer"},
                }
            ),
            add_days,
        ),
        Tool(
            "days_between",
            "Count the days from a start date to an end date (both YYYY-MM-DD).",
            _params(
                {
                    "start": {"type": "string", "description": "YYYY-MM-DD"},
                    "end": {"type": "string", "description": "YYYY-MM-DD"},
                }
            ),
            days_between,
        ),
        Tool(
            "weekday",
            "Give the day of the week of a date in YYYY-MM-DD format.",
            _params({"date": {"type": "string", "description": "YYYY-MM-DD"}}),
            weekday,
        ),
        Tool(
            "lookup_city",
            "Look up one fact about a city: country, population, founded, area_km2, "
            "elevation_m, utc_offset, avg_temp_c or famous_dish.",
            _params(
                {
                    "city": {"type": "string", "description": "the city name"},
                    "field": {"type": "string", "enum": list(CITY_FIELDS)},
                }
            ),
            lookup_city,
        ),
    )
}
"""The registry, in a fixed order (the order ``tool_schemas()`` lists them)."""


def tool_schemas(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """OpenAI function-format schemas for ``names`` (all tools when ``None``), in that order."""
    names = list(TOOLS) if names is None else list(names)
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise ToolError(f"unknown tool(s) {unknown}; known tools: {', '.join(TOOLS)}")
    return [TOOLS[n].schema() for n in names]


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
}


def _check_arguments(tool: Tool, arguments: Mapping[str, Any]) -> None:
    """Validate arguments against the tool's schema: required present, no extras, types and
    enums. Done by hand (not with jsonschema) so that the tools import nothing heavy."""
    props, required = tool.parameters["properties"], tool.parameters["required"]
    missing = [k for k in required if k not in arguments]
    if missing:
        raise ToolError(f"{tool.name}: missing argument(s) {', '.join(missing)}")
    extra = [k for k in arguments if k not in props]
    if extra:
        raise ToolError(f"{tool.name}: unexpected argument(s) {', '.join(map(str, extra))}")
    for key, value in arguments.items():
        spec = props[key]
        expected = _JSON_TYPES[spec["type"]]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ToolError(f"{tool.name}: argument {key} must be a {spec['type']}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ToolError(f"{tool.name}: argument {key} must be finite, got {value!r}")
        if "enum" in spec and value not in spec["enum"]:
            raise ToolError(
                f"{tool.name}: argument {key} must be one of {', '.join(spec['enum'])}; got {value!r}"
            )


def call_tool(name: str, arguments: Mapping[str, Any], *, city_table: CityTable | None = None) -> str:
    """Run a tool by name and return its string result.

    Raises :class:`ToolError` for an unknown tool, invalid arguments, or a tool-level failure.
    ``city_table`` overrides the shipped ``cities.json`` for ``lookup_city`` (data generation
    uses it); other tools ignore it.
    """
    tool = TOOLS.get(name)
    if tool is None:
        raise ToolError(f"unknown tool {name!r}; known tools: {', '.join(TOOLS)}")
    if not isinstance(arguments, Mapping):
        raise ToolError(f"{name}: arguments must be a mapping, got {type(arguments).__name__}")
    _check_arguments(tool, arguments)
    if name == "lookup_city":
        return lookup_city(arguments["city"], arguments["field"], table=city_table)
    return tool.function(**arguments)


# --------------------------------------------------------------------------------------------
# Pythonic call syntax
# --------------------------------------------------------------------------------------------


def _format_value(value: Any) -> str:
    """A Python literal for a JSON-compatible value; strings get double quotes like LFM2's."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot format non-finite number {value!r}")
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes (\n, \", \\, \uXXXX) are all valid Python escapes too.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_format_value(str(k))}: {_format_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot format {type(value).__name__} as a tool-call argument")


def format_tool_calls(calls: Sequence[ToolCall]) -> str:
    """``[ToolCall("weekday", {"date": "2024-07-04"})]`` ->
    ``<|tool_call_start|>[weekday(date="2024-07-04")]<|tool_call_end|>``."""
    for call in calls:
        if not call.name.isidentifier():
            raise ValueError(f"tool name {call.name!r} is not an identifier")
    inner = ", ".join(
        f"{call.name}(" + ", ".join(f"{k}={_format_value(v)}" for k, v in call.arguments.items()) + ")"
        for call in calls
    )
    return f"{TOOL_CALL_START}[{inner}]{TOOL_CALL_END}"


def _char_offset(source: str, lineno: int, col_byte: int) -> int:
    """Character offset in ``source`` of an ``ast`` position (1-based line, UTF-8 byte column)."""
    lines = source.splitlines(keepends=True)
    before = sum(len(line) for line in lines[: lineno - 1])
    line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    return before + len(line.encode("utf-8")[:col_byte].decode("utf-8", errors="ignore"))


def _json_compatible(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_compatible(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_compatible(v) for k, v in value.items())
    return False


def _parse_block(source: str, base: int) -> list[ToolCall]:
    """Parse the text between the markers; ``base`` is its offset in the caller's text."""
    stripped = source.lstrip()
    base += len(source) - len(stripped)
    source = stripped.rstrip()
    if not source:
        raise ToolCallParseError("empty tool call: expected a list like [name(arg=value)]", base)
    try:
        tree = _quiet_parse(source)
    except SyntaxError as exc:
        lines = source.splitlines(keepends=True)
        lineno = min(max(exc.lineno or 1, 1), max(len(lines), 1))
        offset = sum(len(line) for line in lines[: lineno - 1]) + max((exc.offset or 1) - 1, 0)
        raise ToolCallParseError(f"invalid syntax: {exc.msg}", base + min(offset, len(source))) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ToolCallParseError(f"cannot parse tool call: {type(exc).__name__}", base) from None

    def at(node: ast.AST) -> int:
        return base + _char_offset(source, node.lineno, node.col_offset)

    if not isinstance(tree.body, ast.List):
        raise ToolCallParseError("expected a list of calls like [name(arg=value)]", at(tree.body))
    if not tree.body.elts:
        raise ToolCallParseError("empty list of tool calls", at(tree.body))
    calls = []
    for element in tree.body.elts:
        if not isinstance(element, ast.Call):
            raise ToolCallParseError("each list element must be a call like name(arg=value)", at(element))
        if not isinstance(element.func, ast.Name):
            raise ToolCallParseError("the called function must be a plain name", at(element.func))
        if element.args:
            raise ToolCallParseError(
                "positional arguments are not allowed; use name=value", at(element.args[0])
            )
        arguments: dict[str, Any] = {}
        for keyword in element.keywords:
            if keyword.arg is None:
                raise ToolCallParseError("**kwargs are not allowed", at(keyword.value))
            if keyword.arg in arguments:
                raise ToolCallParseError(f"argument {keyword.arg!r} given twice", at(keyword.value))
            try:
                value = ast.literal_eval(keyword.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise ToolCallParseError(
                    f"argument {keyword.arg!r} must be a literal (string, number, bool, None, list, dict)",
                    at(keyword.value),
                ) from None
            if not _json_compatible(value):
                raise ToolCallParseError(
                    f"argument {keyword.arg!r} must be JSON-compatible, got {type(value).__name__}",
                    at(keyword.value),
                )
            arguments[keyword.arg] = value
        calls.append(ToolCall(element.func.id, arguments))
    return calls


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Every tool call in ``text``, in order; ``[]`` when there is no start marker.

    Text outside the markers is ignored (a model may think aloud before calling). Several marked
    blocks are allowed. Raises :class:`ToolCallParseError` (never anything else, never ``eval``)
    for a start marker without an end marker, or a block that is not a non-empty list of
    ``name(key=literal, ...)`` calls.
    """
    if not isinstance(text, str):
        raise ToolCallParseError(f"expected text, got {type(text).__name__}", 0)
    calls: list[ToolCall] = []
    cursor = 0
    while True:
        start = text.find(TOOL_CALL_START, cursor)
        if start < 0:
            stray_end = text.find(TOOL_CALL_END, cursor)
            if stray_end >= 0:
                raise ToolCallParseError("end marker without a start marker", stray_end)
            return calls
        inner_start = start + len(TOOL_CALL_START)
        end = text.find(TOOL_CALL_END, inner_start)
        if end < 0:
            raise ToolCallParseError(f"missing {TOOL_CALL_END} after the start marker", len(text))
        nested = text.find(TOOL_CALL_START, inner_start, end)
        if nested >= 0:
            raise ToolCallParseError("a start marker inside a tool call", nested)
        calls.extend(_parse_block(text[inner_start:end], inner_start))
        cursor = end + len(TOOL_CALL_END)
