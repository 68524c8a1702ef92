"""The pod-template hash names a revision: stable, order-free, blind to its own label."""

import re

import pytest

from rollwise.core.hashing import (
    HASH_LABEL,
    fnv32a,
    pod_template_hash,
    safe_encode,
    template_with_hash_label,
)

TEMPLATE = {
    "metadata": {"labels": {"app": "myapp"}},
    "spec": {"containers": [{"name": "myapp", "image": "argoproj/rollouts-demo:blue"}]},
}


def test_fnv32a_matches_the_published_test_vectors() -> None:
    # Vectors from the FNV reference (draft-eastlake-fnv): "" and "a" and "foobar".
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_safe_encode_maps_digits_like_kubernetes() -> None:
    # '0'..'9' are runes 48..57; modulo 27 they land on "4 5 6 7 8 9 b c d f".
    assert safe_encode("0123456789") == "456789bcdf"


def test_hash_is_ten_safe_characters() -> None:
    value = pod_template_hash(TEMPLATE)
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{10}", value)


def test_hash_does_not_depend_on_key_order() -> None:
    reordered = {
        "spec": {"containers": [{"image": "argoproj/rollouts-demo:blue", "name": "myapp"}]},
        "metadata": {"labels": {"app": "myapp"}},
    }
    assert pod_template_hash(reordered) == pod_template_hash(TEMPLATE)


def test_hash_ignores_its_own_label() -> None:
    value = pod_template_hash(TEMPLATE)
    labelled = template_with_hash_label(TEMPLATE, value)
    assert labelled["metadata"]["labels"][HASH_LABEL] == value
    assert pod_template_hash(labelled) == value
    assert HASH_LABEL not in TEMPLATE["metadata"]["labels"]


def test_label_only_template_hashes_like_an_unlabelled_one() -> None:
    bare = {"spec": {"containers": [{"name": "a", "image": "x"}]}}
    assert pod_template_hash(template_with_hash_label(bare, "abc")) == pod_template_hash(bare)


@pytest.mark.parametrize(
    "change",
    [
        {"spec": {"containers": [{"name": "myapp", "image": "argoproj/rollouts-demo:yellow"}]}},
        {"metadata": {"labels": {"app": "other"}}},
    ],
)
def test_any_other_change_is_a_new_hash(change: dict[str, object]) -> None:
    assert pod_template_hash({**TEMPLATE, **change}) != pod_template_hash(TEMPLATE)


def test_collision_count_changes_the_hash() -> None:
    assert pod_template_hash(TEMPLATE, 1) != pod_template_hash(TEMPLATE)
    assert pod_template_hash(TEMPLATE, 1) != pod_template_hash(TEMPLATE, 2)
