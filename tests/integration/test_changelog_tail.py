"""Reading a group changelog from its last complete snapshot on, on the real broker: what a journey
restore reads, however much older log retention keeps."""

from __future__ import annotations

from agents.changelog import changelog_group, intent_record, read_changelog_tail, read_partitions


def flushes(first_offset: int, count: int) -> list[bytes]:
    log: list[bytes] = []
    for offset in range(first_offset, first_offset + count):
        log += [intent_record(offset)] + changelog_group(offset, [(f"s:{offset}", {"n": offset})])
    return log


def test_the_tail_from_the_last_complete_snapshot_is_read_back_from_the_end(stack, unique_topic, producer_for):
    topic = unique_topic("changelog")
    snapshot = changelog_group(300, [(f"s:{i}", "v" * 1000) for i in range(600)], snapshot=True)
    crashed_snapshot = [intent_record(320)] + changelog_group(320, [("x", "v" * 1000)] * 600, snapshot=True)[:-1]
    log = flushes(0, 300) + [intent_record(300)] + snapshot + flushes(301, 19) + crashed_snapshot + flushes(320, 5)
    producer_for(topic, log)

    start = 600 + 1  # 300 flushes of two records, then the snapshot's intent
    assert read_changelog_tail(stack, topic, 0, window=4) == log[start:]  # windows of 4, 16, 64
    assert read_changelog_tail(stack, topic, 0) == log[start:]
    assert read_partitions(stack, topic, [0])[0] == log


def test_a_changelog_without_a_snapshot_is_read_whole_and_an_empty_one_gives_nothing(stack, unique_topic,
                                                                                   producer_for):
    empty, plain = unique_topic("changelog"), unique_topic("changelog")
    log = flushes(0, 50)
    producer_for(plain, log)
    assert read_changelog_tail(stack, plain, 0, window=8) == log
    assert read_changelog_tail(stack, empty, 0) == []
