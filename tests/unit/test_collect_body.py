"""Request bodies: gzip, JSON array, JSON lines; what is refused and with which status."""

import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.collect.body import BodyError, decode_events, parse_object
from pipeline.validation import MALFORMED, Rejection

LIMIT = 1 << 20

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=20)
events = st.lists(st.dictionaries(st.text(min_size=1, max_size=10), json_scalars, min_size=1, max_size=5),
                  min_size=1, max_size=20)


def jsonl(items) -> bytes:
    return "\n".join(json.dumps(item) for item in items).encode()


@given(events, st.sampled_from(["array", "jsonl"]), st.booleans())
def test_array_and_json_lines_plain_or_gzipped_give_back_the_events(items, shape, compressed):
    body = json.dumps(items).encode() if shape == "array" else jsonl(items)
    encoding = None
    if compressed:
        body, encoding = gzip.compress(body), "gzip"
    assert decode_events(body, encoding, LIMIT) == items


def test_gzip_is_recognised_by_its_magic_bytes_without_the_header():
    assert decode_events(gzip.compress(b'[{"a": 1}]'), None, LIMIT) == [{"a": 1}]


def test_a_bad_json_line_is_a_malformed_rejection_and_the_others_still_count():
    items = decode_events(b'{"a": 1}\n\nnot json\n{"b": 2}\n', None, LIMIT)
    assert items[0] == {"a": 1} and items[2] == {"b": 2}
    assert type(items[1]) is Rejection and items[1].reason == MALFORMED and "line 2" in items[1].detail


def test_one_pretty_printed_object_is_one_event():
    assert decode_events(json.dumps({"a": 1, "b": [1, 2]}, indent=2).encode(), None, LIMIT) == [{"a": 1, "b": [1, 2]}]


@pytest.mark.parametrize("body, encoding, status, words", [
    (b"", None, 400, "empty"),
    (b"   \n", None, 400, "empty"),
    (b"hello", None, 400, "neither a JSON array nor JSON lines"),
    (b'[{"a": 1},', None, 400, "not valid JSON"),
    (b"\xff\xfe[]", None, 400, "not UTF-8"),
    (b"not gzip at all", "gzip", 400, "not valid gzip"),
    (gzip.compress(b"[]")[:-12], "gzip", 400, "truncated"),
    (b"[]", "br", 400, "not supported"),
    (b"[" + b" " * LIMIT + b"]", None, 413, "larger than"),
    (gzip.compress(b"[" + b" " * (4 * LIMIT) + b"]"), "gzip", 413, "decompressed"),
])
def test_unusable_bodies_say_what_to_send(body, encoding, status, words):
    with pytest.raises(BodyError) as raised:
        decode_events(body, encoding, LIMIT)
    assert raised.value.status == status and words in raised.value.message


def test_a_gateway_post_must_be_one_object():
    assert parse_object(b'{"a": 1}', None, LIMIT, "generic gateway") == {"a": 1}
    with pytest.raises(BodyError, match="expected one generic gateway JSON object, got a JSON array"):
        parse_object(b"[]", None, LIMIT, "generic gateway")
