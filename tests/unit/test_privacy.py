"""Keyed hashing of MACs and phones: normalisation, the message format, and the in-place rewrite."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.privacy import (
    IdentifierHasher,
    hash_identifiers,
    hash_mac,
    hash_phone,
    looks_hashed,
    normalise_mac,
    normalise_phone,
)

SECRET = b"test-secret"


@pytest.mark.parametrize(
    "spelling", ["AA-BB-CC-00-11-22", "aa:bb:cc:00:11:22", "aabb.cc00.1122", "AABBCC001122", " aa:bb:cc:00:11:22 "]
)
def test_mac_spellings_normalise_alike(spelling):
    assert normalise_mac(spelling) == "aabbcc001122"


@pytest.mark.parametrize("spelling", ["AA-BB-CC-00-11-22", "aa:bb:cc:00:11:22", "aabb.cc00.1122", "AABBCC001122"])
def test_mac_spellings_hash_alike(spelling):
    assert hash_mac(spelling, SECRET) == hash_mac("aa:bb:cc:00:11:22", SECRET)


@given(st.binary(min_size=6, max_size=6))
def test_every_mac_hashes_alike_in_all_four_spellings(octets):
    hexes = [f"{b:02x}" for b in octets]
    flat = "".join(hexes)
    spellings = ["-".join(hexes).upper(), ":".join(hexes), f"{flat[:4]}.{flat[4:8]}.{flat[8:]}", flat.upper()]
    hasher = IdentifierHasher(SECRET)
    assert len({hasher.hash_mac(s) for s in spellings}) == 1


@pytest.mark.parametrize("value", ["", "aa:bb:cc:00:11", "aa:bb:cc:00:11:22:33", "gg:bb:cc:00:11:22", "not a mac"])
def test_non_macs_normalise_to_none(value):
    assert normalise_mac(value) is None


def test_hash_mac_refuses_a_non_mac_without_echoing_it():
    with pytest.raises(ValueError) as info:
        hash_mac("12:34:56:78:9a", SECRET)
    assert "12:34:56:78:9a" not in str(info.value)


@pytest.mark.parametrize(
    "spelling, normalised",
    [
        ("+86 138-0013-8000", "+8613800138000"),
        ("+86 (138) 0013 8000", "+8613800138000"),
        ("138 0013 8000", "13800138000"),
        ("(021) 5555-1234", "02155551234"),
    ],
)
def test_phone_normalisation_strips_spaces_dashes_parentheses_and_keeps_plus(spelling, normalised):
    assert normalise_phone(spelling) == normalised


@pytest.mark.parametrize("value", ["", "1234", "+", "138-0013-800x", "++8613800138000", "86+13800138000"])
def test_non_phones_normalise_to_none(value):
    assert normalise_phone(value) is None


def test_phone_spellings_hash_alike():
    assert hash_phone("+86 138-0013-8000", SECRET) == hash_phone("+8613800138000", SECRET)


def test_phone_with_and_without_country_code_hash_differently():
    assert hash_phone("+8613800138000", SECRET) != hash_phone("13800138000", SECRET)


def test_hash_phone_refuses_a_non_phone_without_echoing_it():
    with pytest.raises(ValueError) as info:
        hash_phone("call 555", SECRET)
    assert "555" not in str(info.value)


def test_hash_is_hmac_sha256_hex_of_kind_prefixed_normalised_value():
    expected = hmac.new(SECRET, b"mac:aabbcc001122", hashlib.sha256).hexdigest()
    assert hash_mac("AA-BB-CC-00-11-22", SECRET) == expected
    expected_phone = hmac.new(SECRET, b"phone:+8613800138000", hashlib.sha256).hexdigest()
    assert hash_phone("+86 138 0013 8000", SECRET) == expected_phone


def test_a_mac_and_a_phone_with_the_same_digits_never_share_a_hash():
    assert hash_mac("001122334455", SECRET) != hash_phone("001122334455", SECRET)


def test_different_secrets_give_different_hashes():
    assert hash_mac("aa:bb:cc:00:11:22", b"one") != hash_mac("aa:bb:cc:00:11:22", b"two")


def test_str_and_bytes_secrets_are_the_same_key():
    assert hash_mac("aa:bb:cc:00:11:22", "k") == hash_mac("aa:bb:cc:00:11:22", b"k")


def test_hashes_look_hashed():
    assert looks_hashed(hash_mac("aa:bb:cc:00:11:22", SECRET))
    assert not looks_hashed("aa:bb:cc:00:11:22")


def test_empty_secret_is_refused_with_the_setting_name():
    with pytest.raises(ValueError, match="hash_secret"):
        IdentifierHasher(b"")


def test_negative_cache_size_is_refused():
    with pytest.raises(ValueError, match="-1"):
        IdentifierHasher(SECRET, cache_size=-1)


def test_cached_and_uncached_hashers_agree_past_the_cache_size():
    cached, uncached = IdentifierHasher(SECRET, cache_size=2), IdentifierHasher(SECRET, cache_size=0)
    macs = [f"00:00:00:00:00:{i:02x}" for i in range(5)] * 2
    assert [cached.hash_mac(m) for m in macs] == [uncached.hash_mac(m) for m in macs]


def test_hash_identifiers_replaces_raw_mac_and_phone_and_removes_raw_keys():
    event = {"event_id": "e", "wifi_mac": "AA-BB-CC-00-11-22", "phone": "+86 138 0013 8000"}
    hash_identifiers(event, SECRET)
    assert event == {
        "event_id": "e",
        "wifi_mac_hash": hash_mac("aa:bb:cc:00:11:22", SECRET),
        "phone_hash": hash_phone("+8613800138000", SECRET),
    }


def test_hash_identifiers_removes_raw_keys_that_are_null():
    event = {"event_id": "e", "wifi_mac": None, "phone": None, "wifi_mac_hash": None}
    hash_identifiers(event, SECRET)
    assert event == {"event_id": "e", "wifi_mac_hash": None}


def test_hash_identifiers_leaves_an_event_without_raw_values_alone():
    event = {"event_id": "e", "wifi_mac_hash": "f" * 64, "phone_hash": None}
    hash_identifiers(event, SECRET)
    assert event == {"event_id": "e", "wifi_mac_hash": "f" * 64, "phone_hash": None}


def test_raw_value_wins_over_a_hash_sent_alongside():
    event = {"wifi_mac": "aa:bb:cc:00:11:22", "wifi_mac_hash": "0" * 64}
    hash_identifiers(event, SECRET)
    assert event["wifi_mac_hash"] == hash_mac("aa:bb:cc:00:11:22", SECRET)


def test_invalid_raw_value_raises_but_the_raw_key_is_already_gone():
    event = {"wifi_mac": "nonsense", "phone": "+8613800138000"}
    with pytest.raises(ValueError):
        hash_identifiers(event, SECRET)
    assert "wifi_mac" not in event and "phone" not in event
