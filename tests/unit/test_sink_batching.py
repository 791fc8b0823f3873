"""When a sink's partial batch goes in early (sinks/batching.py): only when caught up after a backlog."""

from sinks.batching import CatchUp


def test_a_partial_batch_after_a_full_one_goes_in_once_every_partition_is_read():
    catch_up = CatchUp()
    catch_up.batch_closed(full=True)
    catch_up.received(0)
    assert not catch_up.reached_end(0, [0, 1]), "partition 1 may still hold records"
    assert catch_up.reached_end(1, [0, 1])


def test_at_trickle_traffic_a_caught_up_batch_waits_to_fill():
    catch_up = CatchUp()
    catch_up.batch_closed(full=False)
    assert not catch_up.reached_end(0, [0])


def test_the_first_batch_of_a_sink_waits_to_fill():
    assert not CatchUp().reached_end(0, [0])


def test_a_record_received_after_a_partition_end_makes_it_unread_again():
    catch_up = CatchUp()
    catch_up.batch_closed(full=True)
    catch_up.reached_end(0, [0, 1])
    catch_up.received(0)
    assert not catch_up.reached_end(1, [0, 1])
    assert catch_up.reached_end(0, [0, 1])


def test_partitions_no_longer_assigned_do_not_count():
    catch_up = CatchUp()
    catch_up.batch_closed(full=True)
    catch_up.received(5)  # read before a rebalance took partition 5 away
    assert catch_up.reached_end(0, [0])
