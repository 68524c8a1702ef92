"""Kubernetes-style JSONPath, the subset web metrics use: what each form matches, and the message
for what is not supported."""

from __future__ import annotations

import pytest

from rollwise.providers.jsonpath import JSONPathError, parse_jsonpath

DOC = {
    "a": {"b": [{"c": 1}, {"c": 2}, {"d": 3}]},
    "with.dot": "x",
    "n": None,
    "deep": {"c": 0, "more": [{"c": 9}]},
}


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("{$}", [DOC]),
        ("$", [DOC]),
        ("{}", [DOC]),
        ("{.a.b[0].c}", [1]),
        ("{$.a.b[*].c}", [1, 2]),
        ("{$.a.b[-1]}", [{"d": 3}]),
        ("{$.a.b[7]}", []),
        ("{$['with.dot']}", ["x"]),
        ('{$["a"]["b"][1]["c"]}', [2]),
        ("{$.n}", [None]),
        ("{$.missing.deeper}", []),
        ("{$.a.*}", [DOC["a"]["b"]]),  # type: ignore[index]
        ("{$..c}", [1, 2, 0, 9]),
        ("{ $.a.b[ 1 ].c }", [2]),
    ],
)
def test_each_form_matches_in_document_order(path: str, matches: list[object]) -> None:
    assert parse_jsonpath(path).find_all(DOC) == matches


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("{$.a}{$.b}", "jsonPath '{$.a}{$.b}': expected a single {...} expression"),
        ("{a.b}", "jsonPath '{a.b}': must start with '$' or '.'"),
        ("{$.a[1:2]}", "expected [n], [*] or ['field'] (filters, slices are not supported) at "
         "position 3 of '$.a[1:2]'"),
        ("{$.}", "expected a field name after '.' at position 2 of '$.'"),
        ("{$a}", "expected '.', '..' or '[' at position 1 of '$a'"),
    ],
)  # fmt: skip
def test_unsupported_paths_say_where(path: str, message: str) -> None:
    with pytest.raises(JSONPathError) as raised:
        parse_jsonpath(path)
    assert str(raised.value).endswith(message)
