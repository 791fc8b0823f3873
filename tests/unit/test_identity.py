"""Identity graph: linking, stable person ids, identify-merges, member conflicts, state round trips."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journey_events import browse

from pipeline.identity import IdentityGraph, identifier_keys


def resolve_all(graph: IdentityGraph, *events: dict) -> list[str]:
    return [graph.resolve(e) for e in events]


def partition(graph: IdentityGraph) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for key, value in graph.snapshot().items():
        groups.setdefault(value["person_id"], set()).add(key)
    return {frozenset(g) for g in groups.values()}


# --- basics ----------------------------------------------------------------------------------------

def test_identifier_keys_are_typed_and_ordered_member_phone_device_wifi():
    event = browse("e1", 0, member_id="42", device_id="ipad", wifi_mac_hash="aa", phone_hash="p1")
    assert identifier_keys(event) == ["m:42", "p:p1", "d:ipad", "w:aa"]


def test_first_identifier_of_an_anonymous_person_names_it():
    graph = IdentityGraph()
    assert graph.resolve(browse("e1", 0, device_id="ipad")) == "d:ipad"
    assert graph.resolve(browse("e2", 1, device_id="ipad")) == "d:ipad"


def test_person_with_a_member_id_is_named_after_the_member():
    assert IdentityGraph().resolve(browse("e1", 0, member_id="42")) == "m:42"


def test_event_with_two_identifiers_links_them_into_one_person():
    graph = IdentityGraph()
    person = graph.resolve(browse("e1", 0, device_id="ipad", wifi_mac_hash="aa"))
    assert person == "d:ipad"  # the device outranks the Wi-Fi MAC
    assert graph.resolve(browse("e2", 1, wifi_mac_hash="aa")) == "d:ipad"


def test_linking_is_transitive():
    graph = IdentityGraph()
    resolve_all(graph, browse("e1", 0, device_id="ipad", wifi_mac_hash="aa"),
                browse("e2", 1, wifi_mac_hash="aa", phone_hash="p1"))
    assert graph.person_of("d:ipad") == graph.person_of("p:p1")


def test_event_without_identifier_is_refused_with_what_to_do():
    event = browse("e1", 0)
    event["device_id"] = None
    with pytest.raises(ValueError, match="no identifier; validation must reject it"):
        IdentityGraph().resolve(event)


# --- identify merges ---------------------------------------------------------------------------------

def test_anonymous_device_linked_to_member_merges_into_the_member_and_emits_the_merge():
    graph = IdentityGraph()
    graph.resolve(browse("e1", 0, device_id="ipad"))
    assert graph.resolve(browse("e2", 5, member_id="42", device_id="ipad")) == "m:42"
    (merge,) = graph.pending_merges
    assert (merge.from_person, merge.to_person, merge.event_id) == ("d:ipad", "m:42", "e2")
    assert merge.at_ms == browse("e2", 5)["occurred_at"]
    assert graph.resolve(browse("e3", 6, device_id="ipad")) == "m:42"


def test_two_anonymous_persons_merge_into_the_higher_priority_id():
    graph = IdentityGraph()
    resolve_all(graph, browse("e1", 0, wifi_mac_hash="aa"), browse("e2", 1, device_id="ipad"))
    assert graph.resolve(browse("e3", 2, wifi_mac_hash="aa", device_id="ipad")) == "d:ipad"
    assert [(m.from_person, m.to_person) for m in graph.pending_merges] == [("w:aa", "d:ipad")]


def test_person_id_stays_the_member_id_however_many_identifiers_join():
    graph = IdentityGraph()
    graph.resolve(browse("e1", 0, member_id="42"))
    for i, extra in enumerate([{"device_id": "ipad"}, {"wifi_mac_hash": "aa"}, {"phone_hash": "p1"}]):
        assert graph.resolve(browse(f"e{i + 2}", i, member_id="42", **extra)) == "m:42"
    graph.resolve(browse("e9", 9, device_id="phone-2", wifi_mac_hash="aa"))
    assert graph.person_of("d:phone-2") == "m:42"
    assert not graph.pending_merges  # new identifiers joined; no person was merged


def test_already_linked_identifiers_emit_nothing():
    graph = IdentityGraph()
    graph.resolve(browse("e1", 0, member_id="42", device_id="ipad"))
    graph.drain_changes()
    assert graph.resolve(browse("e2", 1, member_id="42", device_id="ipad")) == "m:42"
    assert graph.pending_merges == [] and graph.drain_changes() == []


# --- conflicts: a person holds at most one member id ---------------------------------------------------

def test_shared_family_tablet_does_not_merge_two_members():
    graph = IdentityGraph()
    graph.resolve(browse("e1", 0, member_id="A", device_id="tablet"))
    assert graph.resolve(browse("e2", 1, member_id="B", device_id="tablet")) == "m:B"
    assert graph.person_of("d:tablet") == "m:A"  # stays with the first member
    assert graph.pending_merges == []
    (conflict,) = graph.conflicts
    assert (conflict.identifier, conflict.kept_person, conflict.refused_person) == ("d:tablet", "m:A", "m:B")
    assert graph.is_shared("d:tablet")


def test_event_with_only_a_shared_identifier_goes_to_its_first_member_and_counts_as_ambiguous():
    graph = IdentityGraph()
    resolve_all(graph, browse("e1", 0, member_id="A", device_id="tablet"),
                browse("e2", 1, member_id="B", device_id="tablet"))
    assert graph.resolve(browse("e3", 2, device_id="tablet")) == "m:A"
    assert graph.ambiguous_events == 1


def test_shared_identifier_links_nothing_afterwards():
    graph = IdentityGraph()
    resolve_all(graph, browse("e1", 0, member_id="A", device_id="tablet"),
                browse("e2", 1, member_id="B", device_id="tablet"))
    assert graph.resolve(browse("e3", 2, device_id="tablet", wifi_mac_hash="x9")) == "w:x9"
    assert graph.person_of("w:x9") == "w:x9"


def test_conflict_through_non_member_identifiers_keeps_members_apart():
    graph = IdentityGraph()
    resolve_all(graph, browse("e1", 0, member_id="A", device_id="dA"),
                browse("e2", 0, member_id="B", wifi_mac_hash="wB"))
    assert graph.resolve(browse("e3", 1, device_id="dA", wifi_mac_hash="wB")) == "m:A"
    assert graph.person_of("w:wB") == "m:B" and graph.is_shared("w:wB")
    assert graph.pending_merges == []


def test_new_identifiers_on_a_conflicting_event_join_the_events_member():
    graph = IdentityGraph()
    graph.resolve(browse("e1", 0, member_id="A", device_id="tablet"))
    graph.resolve(browse("e2", 1, member_id="B", device_id="tablet", wifi_mac_hash="wB"))
    assert graph.person_of("w:wB") == "m:B"


# --- reading and state ----------------------------------------------------------------------------------

def test_person_dict_lists_identifiers_by_kind():
    graph = IdentityGraph()
    graph.resolve(browse("e1", 0, member_id="42", device_id="ipad", wifi_mac_hash="aa", phone_hash="p1"))
    graph.resolve(browse("e2", 1, member_id="42", device_id="android"))
    assert graph.person_dict("m:42") == {"person_id": "m:42", "member_ids": ["42"],
                                         "device_ids": ["android", "ipad"], "wifi_mac_hashes": ["aa"],
                                         "phone_hashes": ["p1"]}


def test_snapshot_restores_through_json_to_the_same_graph():
    graph = IdentityGraph()
    resolve_all(graph, browse("e1", 0, member_id="A", device_id="tablet"),
                browse("e2", 1, member_id="B", device_id="tablet"), browse("e3", 2, wifi_mac_hash="aa"))
    restored = IdentityGraph.restore(json.loads(json.dumps(graph.snapshot())))
    assert restored.snapshot() == graph.snapshot()
    assert restored.resolve(browse("e4", 3, device_id="tablet")) == "m:A"
    assert restored.resolve(browse("e5", 3, device_id="tablet", wifi_mac_hash="aa")) == "w:aa"


def test_drain_changes_gives_only_what_changed_and_replaying_them_restores_the_graph():
    graph, log = IdentityGraph(), []
    graph.resolve(browse("e1", 0, device_id="ipad"))
    log += graph.drain_changes()
    assert log == [("d:ipad", {"person_id": "d:ipad", "shared": False})]
    graph.resolve(browse("e2", 1, device_id="ipad"))
    assert graph.drain_changes() == []
    graph.resolve(browse("e3", 2, member_id="42", device_id="ipad"))
    changes = graph.drain_changes()
    assert dict(changes) == {"m:42": {"person_id": "m:42", "shared": False},
                             "d:ipad": {"person_id": "m:42", "shared": False}}
    assert IdentityGraph.restore(log + changes).snapshot() == graph.snapshot()


# --- properties ------------------------------------------------------------------------------------------

# True persons: each has at most one member id and a few other identifiers of its own.
true_persons = st.lists(
    st.fixed_dictionaries({
        "member_id": st.none() | st.just("M"),
        "device_id": st.none() | st.just("D"),
        "wifi_mac_hash": st.none() | st.just("W"),
        "phone_hash": st.none() | st.just("P"),
    }).filter(lambda p: any(p.values())),
    min_size=1, max_size=5,
)


@st.composite
def events_of_true_persons(draw):
    persons = draw(true_persons)
    events = []
    for n in range(draw(st.integers(1, 25))):
        index = draw(st.integers(0, len(persons) - 1))
        own = {k: f"{v}{index}" for k, v in persons[index].items() if v}
        chosen = draw(st.lists(st.sampled_from(sorted(own)), min_size=1, max_size=3, unique=True))
        events.append(browse(f"e{n}", n, **{k: own[k] for k in chosen}))
    return events


def connected_components(events) -> set[frozenset[str]]:
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x
    for e in events:
        keys = identifier_keys(e)
        for k in keys[1:]:
            parent[find(k)] = find(keys[0])
        find(keys[0])
    groups: dict[str, set[str]] = {}
    for k in parent:
        groups.setdefault(find(k), set()).add(k)
    return {frozenset(g) for g in groups.values()}


@settings(max_examples=200, deadline=None)
@given(events_of_true_persons(), st.randoms(use_true_random=False))
def test_merging_is_order_independent_without_conflicts(events, rnd):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    in_order, reordered = IdentityGraph(), IdentityGraph()
    resolve_all(in_order, *events)
    resolve_all(reordered, *shuffled)
    assert partition(in_order) == partition(reordered) == connected_components(events)
    members = {key for key in in_order.snapshot() if key.startswith("m:")}
    for member in members:  # a member's person id never depends on arrival order
        assert in_order.person_of(member) == reordered.person_of(member) == member


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={
    "member_id": st.sampled_from("ABC"), "device_id": st.sampled_from("xyz"),
    "wifi_mac_hash": st.sampled_from("uvw"), "phone_hash": st.sampled_from("pq")}).filter(bool), min_size=1,
    max_size=30))
def test_no_person_ever_holds_two_member_ids(identifier_sets):
    graph = IdentityGraph()
    for n, ids in enumerate(identifier_sets):
        person = graph.resolve(browse(f"e{n}", n, **ids))
        if "member_id" in ids:
            assert person == "m:" + ids["member_id"]
    for person in graph.persons():
        assert len(graph.person_dict(person)["member_ids"]) <= 1


def test_bulk_random_stream_keeps_members_and_merges_consistent():
    rnd, graph = random.Random(3), IdentityGraph()
    for n in range(2000):
        ids = {f: f"{f[0]}{rnd.randrange(40)}" for f in ("member_id", "device_id", "wifi_mac_hash")
               if rnd.random() < 0.4} or {"device_id": f"d{rnd.randrange(40)}"}
        graph.resolve(browse(f"e{n}", n, **ids))
    merged_away = {m.from_person for m in graph.pending_merges}
    assert not merged_away & set(graph.persons())
    owners = {v["person_id"] for v in graph.snapshot().values()}
    assert owners == set(graph.persons())
