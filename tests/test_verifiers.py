"""Verifiers score right, wrong and malformed outputs sensibly, and never raise on bad output."""

from __future__ import annotations

import json

import pytest

from lfm_helpers.data.extraction import SCHEMAS, canonical_json
from lfm_helpers.tools import ToolCall, format_tool_calls
from lfm_helpers.verifiers import aggregate, rate, verify_extraction, verify_final_answer, verify_tool_call

SCHEMA = SCHEMAS["order"]
TARGET = {
    "order_id": "ORD-12345",
    "customer": "Anna Berg",
    "product": "blue mug",
    "quantity": 3,
    "unit_price": 12.5,
    "date": "2024-03-05",
    "ship_to_city": "Kessling",
    "express": False,
}
RIGHT = canonical_json(TARGET, SCHEMA)


def test_extraction_right_answer():
    for output in (RIGHT, f"  {RIGHT}<|im_end|>", f"{RIGHT}\n<|im_end|>\n", f"Here you go: {RIGHT} Done."):
        result = verify_extraction(output, TARGET, SCHEMA)
        assert result == {
            "valid_json": True,
            "schema_valid": True,
            "field_accuracy": 1.0,
            "exact_match": True,
            "error": None,
        }


def test_extraction_key_order_and_number_form_do_not_matter():
    shuffled = dict(reversed(list(TARGET.items())), unit_price=12.50, quantity=3.0)
    result = verify_extraction(json.dumps(shuffled), TARGET, SCHEMA)
    assert result["exact_match"] and result["field_accuracy"] == 1.0
    assert result["schema_valid"]  # JSON Schema counts 3.0 as an integer


def test_extraction_wrong_field():
    wrong = dict(TARGET, quantity=4, date="2024-05-03")
    result = verify_extraction(json.dumps(wrong), TARGET, SCHEMA)
    assert result["valid_json"] and result["schema_valid"]
    assert result["field_accuracy"] == pytest.approx(6 / 8)
    assert not result["exact_match"]


def test_extraction_types_are_not_coerced():
    wrong = dict(TARGET, quantity="3", express=0)
    result = verify_extraction(json.dumps(wrong), TARGET, SCHEMA)
    assert result["valid_json"] and not result["schema_valid"]
    assert result["field_accuracy"] == pytest.approx(6 / 8)
    assert "schema" in result["error"]


def test_extraction_schema_violations():
    missing = {k: v for k, v in TARGET.items() if k != "express"}
    extra = dict(TARGET, note="x")
    bad_date = dict(TARGET, date="March 5, 2024")
    for obj in (missing, extra, bad_date):
        result = verify_extraction(json.dumps(obj), TARGET, SCHEMA)
        assert result["valid_json"] and not result["schema_valid"] and not result["exact_match"]
    assert verify_extraction(json.dumps(extra), TARGET, SCHEMA)["field_accuracy"] == 1.0


@pytest.mark.parametrize(
    "output", ["", "no json here", RIGHT[:-1], '{"order_id": ORD-1}', "[1, 2]", "{" * 10000]
)
def test_extraction_malformed(output):
    result = verify_extraction(output, TARGET, SCHEMA)
    assert result["valid_json"] is False and result["schema_valid"] is False
    assert result["field_accuracy"] == 0.0 and result["exact_match"] is False
    assert result["error"]


CALL = [{"name": "convert_units", "arguments": {"value": 3.5, "from_unit": "km", "to_unit": "mi"}}]


def test_tool_call_right():
    output = format_tool_calls([ToolCall.from_dict(CALL[0])]) + "<|im_end|>"
    result = verify_tool_call(output, CALL)
    assert result["parsed"] and result["name_correct"] and result["args_correct"] and result["error"] is None
    close = '<|tool_call_start|>[convert_units(to_unit="mi", value=3.50001, from_unit="km")]<|tool_call_end|>'
    assert verify_tool_call(close, CALL)["args_correct"]
    assert verify_tool_call(close, [ToolCall.from_dict(CALL[0])])["args_correct"]


def test_tool_call_wrong_arguments_and_name():
    wrong_arg = '<|tool_call_start|>[convert_units(value=35, from_unit="km", to_unit="mi")]<|tool_call_end|>'
    result = verify_tool_call(wrong_arg, CALL)
    assert result["parsed"] and result["name_correct"] and not result["args_correct"]
    missing_arg = '<|tool_call_start|>[convert_units(value=3.5, from_unit="km")]<|tool_call_end|>'
    assert not verify_tool_call(missing_arg, CALL)["args_correct"]
    string_number = (
        '<|tool_call_start|>[convert_units(value="3.5", from_unit="km", to_unit="mi")]<|tool_call_end|>'
    )
    assert not verify_tool_call(string_number, CALL)["args_correct"]
    wrong_name = '<|tool_call_start|>[calculator(expression="3.5 * 0.62")]<|tool_call_end|>'
    result = verify_tool_call(wrong_name, CALL)
    assert result["parsed"] and not result["name_correct"] and not result["args_correct"]


def test_calculator_expressions_compare_by_value():
    expected = [{"name": "calculator", "arguments": {"expression": "11 * 17.99"}}]
    same = '<|tool_call_start|>[calculator(expression="17.99*11")]<|tool_call_end|>'
    other = '<|tool_call_start|>[calculator(expression="11 * 18")]<|tool_call_end|>'
    assert verify_tool_call(same, expected)["args_correct"]
    assert not verify_tool_call(other, expected)["args_correct"]


@pytest.mark.parametrize(
    "output",
    [
        '<|tool_call_start|>[convert_units(3.5, "km", "mi")]<|tool_call_end|>',
        '<|tool_call_start|>[convert_units(value=3.5, from_unit="km", to_unit="mi")]',
        "<|tool_call_start|>[convert_units(value=3.5, from_unit=km)]<|tool_call_end|>",
        "3.5 km is 2.1748 miles.",
    ],
)
def test_tool_call_malformed(output):
    result = verify_tool_call(output, CALL)
    assert result == {**result, "parsed": False, "name_correct": False, "args_correct": False}
    assert result["error"]


def test_turn_that_should_not_call():
    assert verify_tool_call("Hello! How can I help?", [])["args_correct"]
    result = verify_tool_call(format_tool_calls([ToolCall("weekday", {"date": "2024-01-01"})]), [])
    assert result["parsed"] and not result["name_correct"]


@pytest.mark.parametrize(
    ("output", "expected", "ok"),
    [
        ("12 km is 7.4565 miles.", "7.4565", True),
        ("12 km is 7.4565 miles.<|im_end|>", "7.4565", True),
        ("12 km is 7.46 miles.", "7.4565", False),
        ("Kessling has a population of 1,234,567.", "1234567", True),
        ("Kessling has a population of 1234567.", "1234567", True),
        ("Kessling has a population of 123456.", "1234567", False),
        ("It is -3.5 degrees.", "-3.5", True),
        ("It is 3.5 degrees.", "-3.5", False),
        ("2024-03-09 is a Saturday.", "Saturday", True),
        ("2024-03-09 is a saturday", "Saturday", True),
        ("2024-03-09 is a Sunday.", "Saturday", False),
        ("The date will be 2024-04-04.", "2024-04-04", True),
        ("The date will be 2024-04-05.", "2024-04-04", False),
        ("Kessling is in the UTC+1 time zone.", "UTC+1", True),
        ("The famous dish is smoked  herring pie.", "smoked herring pie", True),
        ("", "7", False),
    ],
)
def test_final_answer(output, expected, ok):
    assert verify_final_answer(output, expected) is ok


def test_aggregate_and_rate():
    results = [
        {"valid_json": True, "field_accuracy": 1.0, "error": None},
        {"valid_json": False, "field_accuracy": 0.5, "error": "x"},
    ]
    assert aggregate(results) == {"n": 2, "valid_json": 0.5, "field_accuracy": 0.75}
    assert aggregate([]) == {"n": 0}
    assert rate([True, False, True, True]) == 0.75
    assert rate([]) == 0.0


def test_tool_call_reward_grades_calls():
    from lfm_helpers.verifiers import tool_call_reward

    expected = [{"name": "add_days", "arguments": {"date": "2024-03-25", "days": 10}}]
    assert tool_call_reward('<|tool_call_start|>[add_days(date="2024-03-25", days=10)]<|tool_call_end|>', expected) == 1.0
    assert tool_call_reward('<|tool_call_start|>[add_days(date="2024-03-25", days=11)]<|tool_call_end|>', expected) == 0.5
    assert tool_call_reward('<|tool_call_start|>[weekday(date="2024-03-25")]<|tool_call_end|>', expected) == 0.0
    assert tool_call_reward("It is 2024-04-04.", expected) == 0.0
    assert tool_call_reward("<|tool_call_start|>[add_days(date=)]<|tool_call_end|>", expected) == 0.0
