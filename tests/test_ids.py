"""Ids: generated with a prefix and a 27-char time-sortable base62 body."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journal.errors import InvalidIdError
from journal.ids import (
    DEFAULT_TENANT,
    id_timestamp,
    new_body,
    new_event_id,
    new_execution_id,
    new_step_id,
    parse_event_id,
    parse_execution_id,
    parse_step_id,
    parse_tenant_id,
)
from tests.strategies import MAX_BODY, base62_body, bodies, tenant_ids

GENERATORS: list[tuple[str, Callable[[], str], Callable[[object], str]]] = [
    ("exec_", new_execution_id, parse_execution_id),
    ("step_", new_step_id, parse_step_id),
    ("evt_", new_event_id, parse_event_id),
]
_ID_SHAPE = re.compile(r"(exec|step|evt)_[0-9A-Za-z]{27}")


@pytest.mark.parametrize(("prefix", "generate", "parse"), GENERATORS)
def test_generated_ids_have_their_prefix_and_a_27_char_base62_body(
    prefix: str, generate: Callable[[], str], parse: Callable[[object], str]
) -> None:
    value = generate()
    assert value.startswith(prefix)
    assert _ID_SHAPE.fullmatch(value)
    assert parse(value) == value


@pytest.mark.parametrize(("prefix", "generate", "parse"), GENERATORS)
def test_generated_ids_do_not_repeat(
    prefix: str, generate: Callable[[], str], parse: Callable[[object], str]
) -> None:
    assert len({generate() for _ in range(2000)}) == 2000


def test_ids_sort_by_their_creation_second() -> None:
    earlier = [new_body(now=1_700_000_000) for _ in range(20)]
    later = [new_body(now=1_700_000_001) for _ in range(20)]
    assert max(earlier) < min(later)


def test_id_timestamp_reads_back_the_creation_second() -> None:
    assert id_timestamp("exec_" + new_body(now=1_700_000_123.9)) == 1_700_000_123


@given(bodies)
def test_every_160_bit_body_parses_under_each_prefix(body: str) -> None:
    assert parse_execution_id("exec_" + body) == "exec_" + body
    assert parse_step_id("step_" + body) == "step_" + body
    assert parse_event_id("evt_" + body) == "evt_" + body


BAD_EXECUTION_IDS: list[object] = [
    "",
    "exec_",
    "exec",
    "step_" + "0" * 27,  # a step id is not an execution id
    "EXEC_" + "0" * 27,
    "exec_" + "0" * 26,  # too short
    "exec_" + "0" * 28,  # too long
    "exec_" + "0" * 26 + "-",  # not base62
    "exec_" + "0" * 26 + "é",
    "exec_" + "z" * 27,  # more than 160 bits
    "exec_" + base62_body(MAX_BODY + 1),
    " exec_" + "0" * 27,
    "exec_" + "0" * 27 + "\n",
    None,
    42,
    b"exec_" + b"0" * 27,
]


@pytest.mark.parametrize("value", BAD_EXECUTION_IDS, ids=repr)
def test_a_malformed_execution_id_is_refused_naming_the_value(value: object) -> None:
    with pytest.raises(InvalidIdError) as caught:
        parse_execution_id(value)
    assert repr(value) in str(caught.value)


def test_invalid_id_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid step id"):
        parse_step_id("exec_" + "0" * 27)


def test_the_largest_160_bit_body_is_accepted_and_one_more_is_not() -> None:
    assert parse_execution_id("exec_" + base62_body(MAX_BODY))
    with pytest.raises(InvalidIdError):
        parse_execution_id("exec_" + base62_body(MAX_BODY + 1))


@given(tenant_ids)
def test_tenant_names_of_1_to_64_allowed_characters_parse(value: str) -> None:
    assert parse_tenant_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "tenant_",
        "acme",
        "tenant_Acme",
        "tenant_acme.co",
        "tenant_acme ",
        "tenant_" + "a" * 65,
        "Tenant_acme",
        None,
    ],
    ids=repr,
)
def test_a_malformed_tenant_id_is_refused_naming_the_value(value: object) -> None:
    with pytest.raises(InvalidIdError) as caught:
        parse_tenant_id(value)
    assert repr(value) in str(caught.value)


def test_the_default_tenant_is_a_valid_tenant_id() -> None:
    assert parse_tenant_id(DEFAULT_TENANT) == "tenant_default"
    assert parse_tenant_id("tenant_" + "a" * 64)


@given(st.integers(min_value=0, max_value=MAX_BODY))
def test_base62_bodies_are_fixed_width_so_text_order_is_numeric_order(
    value: int,
) -> None:
    body = base62_body(value)
    assert len(body) == 27
    assert (body < base62_body(MAX_BODY)) == (value < MAX_BODY)
