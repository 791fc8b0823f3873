"""The journey's batches run with the cyclic collector paused (agents/app.py, collector_paused)."""

import gc
import weakref

from agents.app import collector_paused


class Node:
    pass


def test_the_collector_is_off_during_a_batch_and_the_batch_cycles_are_gone_after_it():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        node = Node()
        node.self = node  # a cycle: reference counting alone never frees it
        alive = weakref.ref(node)
        del node
        assert alive() is not None
    assert gc.isenabled()
    assert alive() is None, "the young collection after the batch frees the batch's cycles"


def test_a_collector_switched_off_before_stays_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
