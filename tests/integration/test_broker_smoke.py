"""The local broker carries real traffic: a consumer group reads back everything produced."""


def test_10000_records_produced_are_read_back_by_a_consumer_group(unique_topic, producer_for, consumer_for):
    topic = unique_topic(partitions=3)
    values = [f"record-{i:05d}".encode() + b"x" * 180 for i in range(10_000)]

    producer_for(topic, values)
    messages = consumer_for(topic, expected=10_000)

    assert sorted(m.value() for m in messages) == sorted(values)
