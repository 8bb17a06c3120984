"""Score model outputs on the extraction and tool-use tasks.

These are *verifiers*, not string comparisons: they parse what the model wrote and check it the
way a program consuming it would. That gives partial credit a learner can act on (valid JSON but
a wrong field; the right tool with one wrong argument) and it is the reward signal a later
preference or RL stage can use. Every verifier takes untrusted model text and never raises on
bad output: malformed output is a *result* (``valid_json=False``, ``parsed=False`` with an
``error`` message), not an exception.

- :func:`verify_extraction`: is the output JSON, does it follow the schema, how many fields
  are right, is it exactly right;
- :func:`verify_tool_call`: did the model write a parseable call, to the right tool, with the
  right arguments (numbers compared with a tolerance);
- :func:`verify_final_answer`: does the natural-language answer contain the expected value;
- :func:`aggregate` and :func:`rate`: average lists of results into rates for a report.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from lfm_helpers.tools import ToolCall, ToolCallParseError, ToolError, calculator, parse_tool_calls

END_OF_TURN = "<|im_end|>"
REL_TOL = 1e-4
"""Relative tolerance for numbers: ``7.4565`` matches ``7.45650001`` but not ``7.46``."""
ABS_TOL = 1e-6


def _strip_output(text: str) -> str:
    """Drop surrounding whitespace and a trailing end-of-turn token (and anything after it)."""
    cut = text.find(END_OF_TURN)
    return (text if cut < 0 else text[:cut]).strip()


def _numbers_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _same_value(actual: Any, expected: Any) -> bool:
    """JSON equality that keeps types apart (``True`` is not ``1``, ``"5"`` is not ``5``) but
    lets ``12`` equal ``12.0``, as a JSON consumer would."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and actual == expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return actual == expected
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(
            _same_value(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(_same_value(actual[k], expected[k]) for k in expected)
    return type(actual) is type(expected) and actual == expected


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def first_json_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(object, None)`` for the JSON object starting at the first ``{`` of ``text``, or
    ``(None, error message)``. Text around the object is allowed."""
    text = _strip_output(text)
    start = text.find("{")
    if start < 0:
        return None, "no JSON object in the output"
    try:
        value, _end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at character {exc.pos}"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    return value, None


def verify_extraction(
    output_text: str, target: Mapping[str, Any], schema: Mapping[str, Any]
) -> dict[str, Any]:
    """Score one extraction output against its target.

    Returns ``valid_json`` (a JSON object was found), ``schema_valid`` (it validates against
    ``schema``, draft 2020-12), ``field_accuracy`` (share of target fields with exactly the target
    value), ``exact_match`` (the object equals the target: same keys, same values) and ``error``
    (why it is not valid JSON or not schema-valid, else ``None``).
    """
    obj, error = first_json_object(output_text)
    if obj is None:
        return {
            "valid_json": False,
            "schema_valid": False,
            "field_accuracy": 0.0,
            "exact_match": False,
            "error": error,
        }
    schema_errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(obj), key=lambda e: list(e.path)
    )
    correct = sum(1 for key, value in target.items() if key in obj and _same_value(obj[key], value))
    return {
        "valid_json": True,
        "schema_valid": not schema_errors,
        "field_accuracy": correct / len(target) if target else 1.0,
        "exact_match": _same_value(obj, dict(target)),
        "error": f"schema: {schema_errors[0].message}" if schema_errors else None,
    }


# --------------------------------------------------------------------------------------------
# Tool use
# --------------------------------------------------------------------------------------------


def _arguments_match(name: str, actual: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    if actual.keys() != expected.keys():
        return False
    for key, want in expected.items():
        got = actual[key]
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            if isinstance(got, bool) or not isinstance(got, (int, float)) or not _numbers_close(got, want):
                return False
        elif isinstance(want, str) and isinstance(got, str):
            if " ".join(got.split()) == " ".join(want.split()):
                continue
            if not (name == "calculator" and key == "expression" and _same_arithmetic(got, want)):
                return False
        elif not _same_value(got, want):
            return False
    return True


def _same_arithmetic(a: str, b: str) -> bool:
    """Two calculator expressions are the same call if they evaluate to the same number
    (``"3*4"`` and ``"4 * 3"``): the call would give the same result."""
    try:
        return _numbers_close(float(calculator(a)), float(calculator(b)))
    except ToolError:
        return False


def verify_tool_call(
    output_text: str, expected_calls: Sequence[Mapping[str, Any] | ToolCall]
) -> dict[str, Any]:
    """Score one assistant turn that should call ``expected_calls`` (``{"name", "arguments"}``
    dicts as in the data, or :class:`~lfm_helpers.tools.ToolCall`).

    Returns ``parsed`` (the calls parse, and there is at least one when one is expected),
    ``name_correct`` (the called tool names, in order, are the expected ones), ``args_correct``
    (names right and every argument equal; numbers within :data:`REL_TOL`, strings up to
    whitespace, calculator expressions by value), ``error`` (why it did not parse, with the
    character position) and ``calls`` (what was parsed, as dicts). An empty ``expected_calls``
    means the turn should *not* call a tool: then names and arguments count as correct only
    when no call was made.
    """
    expected = [c if isinstance(c, ToolCall) else ToolCall.from_dict(c) for c in expected_calls]
    try:
        calls = parse_tool_calls(_strip_output(output_text))
    except ToolCallParseError as exc:
        return {"parsed": False, "name_correct": False, "args_correct": False, "error": str(exc), "calls": []}
    result: dict[str, Any] = {"parsed": True, "error": None, "calls": [c.to_dict() for c in calls]}
    if expected and not calls:
        result.update(parsed=False, error="no tool call found")
    name_correct = [c.name for c in calls] == [c.name for c in expected]
    result["name_correct"] = name_correct
    result["args_correct"] = name_correct and all(
        _arguments_match(e.name, c.arguments, e.arguments) for c, e in zip(calls, expected, strict=True)
    )
    return result


_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text``; ``1,234.5`` reads as 1234.5."""
    return [float(m.group().replace(",", "")) for m in _NUMBER_IN_TEXT.finditer(text)]


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def verify_final_answer(output_text: str, expected_answer: str) -> bool:
    """Does the answer contain the expected value?

    A numeric ``expected_answer`` matches any number in the output within :data:`REL_TOL`
    (so "1,234,567" matches "1234567"); any other answer must appear in the output, compared
    case-insensitively with whitespace collapsed ("Thursday", "2024-04-04", "UTC+2").
    """
    text = _strip_output(output_text)
    if _PLAIN_NUMBER.fullmatch(expected_answer.strip()):
        want = float(expected_answer)
        return any(_numbers_close(got, want) for got in numbers_in(text))
    return _normalise(expected_answer) in _normalise(text)


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def rate(values: Sequence[bool | float]) -> float:
    """The mean of booleans or scores (0.0 for an empty list)."""
    return sum(float(v) for v in values) / len(values) if values else 0.0


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Average a list of verifier results: every boolean or numeric field becomes its mean
    (``{"valid_json": 0.95, "field_accuracy": 0.81, ...}``), plus ``n``, the number of results.
    Text and list fields (``error``, ``calls``) are skipped."""
    keys: list[str] = []
    for result in results:
        for key, value in result.items():
            if key not in keys and isinstance(value, (bool, int, float)):
                keys.append(key)
    summary: dict[str, float] = {"n": len(results)}
    for key in keys:
        summary[key] = rate([r[key] for r in results if isinstance(r.get(key), (bool, int, float))])
    return summary


# --------------------------------------------------------------------------------------------
# Rewards
# --------------------------------------------------------------------------------------------


def tool_call_reward(output_text: str, expected_calls: Sequence[Mapping[str, Any] | ToolCall]) -> float:
    """A graded reward for one call turn: 1.0 for the right call, 0.5 for the right tool with a
    wrong argument, 0.0 for anything else (the wrong tool, no call, text that does not parse).

    The half step matters to preference optimisation and RL: a group of sampled completions that
    all fail the same way gives no signal, while "right tool, wrong number" beats "no call".
    """
    check = verify_tool_call(output_text, expected_calls)
    if check["args_correct"] and check["parsed"]:
        return 1.0
    return 0.5 if check["name_correct"] and check["parsed"] else 0.0
