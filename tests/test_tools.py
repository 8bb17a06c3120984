"""Tools compute the right thing, refuse the wrong thing, and the call syntax round-trips."""

from __future__ import annotations

import pytest

from lfm_helpers.data.world import build_world
from lfm_helpers.tools import (
    TOOL_CALL_END,
    TOOL_CALL_START,
    TOOLS,
    ToolCall,
    ToolCallParseError,
    ToolError,
    call_tool,
    city_table_from_rows,
    format_number,
    format_tool_calls,
    parse_tool_calls,
    tool_schemas,
)

CITY_TABLE = city_table_from_rows(build_world(0).city_rows())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7, "7"),
        (7.0, "7"),
        (1 / 3, "0.3333"),
        (12.5, "12.5"),
        (-0.00001, "0"),
        (1e12 + 0.5, "1000000000000.5"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("3 + 4", "7"),
        ("(3 + 4) * 2.5", "17.5"),
        ("10 / 4", "2.5"),
        ("2 ** 10", "1024"),
        ("-3 - -2", "-1"),
        ("1 / 3", "0.3333"),
        ("  6*7 ", "42"),
    ],
)
def test_calculator(expression, result):
    assert call_tool("calculator", {"expression": expression}) == result


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "x + 1",
        "abs(-3)",
        "(1).real",
        "'a' * 3",
        "1 / 0",
        "9 ** 9 ** 9",
        "1 <",
        "True + 1",
        "2 < 3",
        "",
    ],
)
def test_calculator_rejects(expression):
    with pytest.raises(ToolError):
        call_tool("calculator", {"expression": expression})


@pytest.mark.parametrize(
    ("args", "result"),
    [
        ({"value": 12, "from_unit": "km", "to_unit": "mi"}, "7.4565 mi"),
        ({"value": 100, "from_unit": "C", "to_unit": "F"}, "212 F"),
        ({"value": 32, "from_unit": "F", "to_unit": "C"}, "0 C"),
        ({"value": 0, "from_unit": "C", "to_unit": "K"}, "273.15 K"),
        ({"value": 1, "from_unit": "lb", "to_unit": "g"}, "453.5924 g"),
        ({"value": 1, "from_unit": "gal", "to_unit": "l"}, "3.7854 l"),
        ({"value": 3.5, "from_unit": "ft", "to_unit": "in"}, "42 in"),
    ],
)
def test_convert_units(args, result):
    assert call_tool("convert_units", args) == result


def test_calendar_tools():
    assert call_tool("add_days", {"date": "2024-03-25", "days": 10}) == "2024-04-04"
    assert call_tool("add_days", {"date": "2024-03-01", "days": -1}) == "2024-02-29"
    assert call_tool("days_between", {"start": "2024-01-01", "end": "2024-12-31"}) == "365"
    assert call_tool("days_between", {"start": "2024-01-10", "end": "2024-01-01"}) == "-9"
    assert call_tool("weekday", {"date": "2024-07-04"}) == "Thursday"


def test_lookup_city_uses_the_table():
    city = CITY_TABLE["Kessling"]
    assert call_tool(
        "lookup_city", {"city": "Kessling", "field": "population"}, city_table=CITY_TABLE
    ) == str(city["population"])
    assert (
        call_tool("lookup_city", {"city": "kessling", "field": "elevation_m"}, city_table=CITY_TABLE)
        == f"{city['elevation_m']} m"
    )
    assert (
        call_tool("lookup_city", {"city": "Kessling", "field": "utc_offset"}, city_table=CITY_TABLE)
        == "UTC+1"
    )
    assert (
        call_tool("lookup_city", {"city": "Quenby", "field": "utc_offset"}, city_table=CITY_TABLE) == "UTC-5"
    )


def test_lookup_city_reads_the_shipped_table():
    assert call_tool("lookup_city", {"city": "Kessling", "field": "country"}) == "Norvale"


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("nope", {}, "unknown tool"),
        ("weekday", {}, "missing"),
        ("weekday", {"date": "2024-01-01", "extra": 1}, "unexpected"),
        ("weekday", {"date": 20240101}, "must be a string"),
        ("weekday", {"date": "March 5, 2024"}, "YYYY-MM-DD"),
        ("weekday", {"date": "2024-02-30"}, "invalid date"),
        ("add_days", {"date": "2024-01-01", "days": 1.5}, "must be a integer"),
        ("add_days", {"date": "2024-01-01", "days": True}, "must be a integer"),
        ("add_days", {"date": "2024-01-01", "days": 10**9}, "out of range"),
        ("convert_units", {"value": 1, "from_unit": "km", "to_unit": "kg"}, "cannot convert"),
        ("convert_units", {"value": 1, "from_unit": "parsec", "to_unit": "km"}, "must be one of"),
        ("lookup_city", {"city": "Atlantis", "field": "population"}, "unknown city"),
        ("lookup_city", {"city": "Kessling", "field": "mayor"}, "must be one of"),
    ],
)
def test_bad_calls_raise_tool_error(name, args, message):
    with pytest.raises(ToolError, match=message):
        call_tool(name, args, city_table=CITY_TABLE)


def test_tool_schemas_are_openai_function_format():
    schemas = tool_schemas()
    assert [s["name"] for s in schemas] == list(TOOLS)
    for schema in schemas:
        assert set(schema) == {"name", "description", "parameters"}
        params = schema["parameters"]
        assert params["type"] == "object"
        assert set(params["required"]) <= set(params["properties"])
    assert [s["name"] for s in tool_schemas(["weekday", "calculator"])] == ["weekday", "calculator"]
    with pytest.raises(ToolError):
        tool_schemas(["nope"])


# -- call syntax ---------------------------------------------------------------------------


def test_format_matches_lfm2_syntax():
    text = format_tool_calls([ToolCall("convert_units", {"value": 3.5, "from_unit": "km", "to_unit": "mi"})])
    assert (
        text == '<|tool_call_start|>[convert_units(value=3.5, from_unit="km", to_unit="mi")]<|tool_call_end|>'
    )


@pytest.mark.parametrize(
    "calls",
    [
        [ToolCall("weekday", {"date": "2024-07-04"})],
        [
            ToolCall("calculator", {"expression": "(3 + 4) * 2"}),
            ToolCall("add_days", {"date": "2024-01-01", "days": -3}),
        ],
        [
            ToolCall(
                "f",
                {
                    "s": 'quote " backslash \\ newline \n unicode é',
                    "n": None,
                    "b": True,
                    "l": [1, 2.5, "x"],
                    "d": {"k": [1]},
                },
            )
        ],
        [ToolCall("no_args", {})],
    ],
)
def test_round_trip(calls):
    text = format_tool_calls(calls)
    assert parse_tool_calls(text) == calls
    assert parse_tool_calls("Let me check. " + text + " done") == calls


def test_parse_without_markers_is_empty_and_several_blocks_concatenate():
    assert parse_tool_calls("The answer is 42.") == []
    one = format_tool_calls([ToolCall("weekday", {"date": "2024-07-04"})])
    assert len(parse_tool_calls(one + "\n" + one)) == 2


S, E = TOOL_CALL_START, TOOL_CALL_END


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        (f'{S}[weekday("2024-07-04")]{E}', len(S) + 9, "positional"),
        (f'{S}[tools.weekday(date="x")]{E}', len(S) + 1, "plain name"),
        (f'{S}[weekday(date="x")]', len(S) + 19, "missing"),
        (f'{S}[weekday(date="x"){E}', len(S), "invalid syntax"),
        (f'{S}weekday(date="x"){E}', len(S), "list"),
        (f"{S}[1 + 2]{E}", len(S) + 1, "call"),
        (f'{S}[weekday(date=open("x"))]{E}', len(S) + 14, "literal"),
        (f"{S}[weekday(date=x)]{E}", len(S) + 14, "literal"),
        (f"{S}[weekday(date={{1, 2}})]{E}", len(S) + 14, "JSON-compatible"),
        (f"{S}[weekday(**kw)]{E}", len(S) + 11, "kwargs"),
        (f"{S}[f(a=1, a=2)]{E}", len(S) + 10, "twice"),
        (f"{S}[]{E}", len(S), "empty"),
        (f"{S}   {E}", len(S) + 3, "empty"),
        (f'{S}[f(a="é"), g(1)]{E}', len(S) + 13, "positional"),
        (f"text {E}", 5, "without a start"),
        (f"{S}[f(a=1) {S}[g()]{E}", len(S) + 8, "inside"),
        (f"{S}[f(a=\x00)]{E}", len(S), "null bytes|ValueError"),
    ],
)
def test_parse_errors_carry_positions(text, position, message):
    with pytest.raises(ToolCallParseError, match=message) as info:
        parse_tool_calls(text)
    assert info.value.position == position, (info.value.message, text[info.value.position :])


def test_parse_never_evaluates(tmp_path):
    marker = tmp_path / "pwned"
    text = f"{S}[f(a=__import__('pathlib').Path({str(marker)!r}).touch())]{E}"
    with pytest.raises(ToolCallParseError):
        parse_tool_calls(text)
    assert not marker.exists()


def test_parser_only_ever_raises_its_own_error():
    """Fuzz: truncations and mutations of valid calls, and pathological nesting, either parse or
    raise ToolCallParseError with a position inside the text."""
    import random

    rng = random.Random(0)
    valid = format_tool_calls(
        [
            ToolCall("convert_units", {"value": 3.5, "from_unit": "km", "to_unit": "mi"}),
            ToolCall("weekday", {"date": "é"}),
        ]
    )
    alphabet = list("[](){}=,\"'.+-*/ abc123é_") + [S, E, "\x00", "**", "lambda", "\n"]
    texts = [valid[:i] for i in range(len(valid) + 1)]
    texts += [f"{S}{'[' * 500}{']' * 500}{E}", f"{S}[f(a={'-' * 10000}1)]{E}", f"{S}[f(a=1e999)]{E}"]
    for _ in range(2000):
        chars = list(valid)
        for _ in range(rng.randint(1, 4)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
        texts.append("".join(chars))
    for text in texts:
        try:
            calls = parse_tool_calls(text)
        except ToolCallParseError as exc:
            assert 0 <= exc.position <= len(text), (text, exc.position)
        else:
            assert all(isinstance(c, ToolCall) for c in calls)
