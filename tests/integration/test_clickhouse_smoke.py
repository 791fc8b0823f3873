"""The local ClickHouse server takes a columnar batch over the native protocol and returns it."""

from datetime import datetime, timedelta


def test_10000_rows_inserted_in_one_batch_are_read_back(clickhouse_db):
    clickhouse_db.execute(
        "CREATE TABLE smoke (id UInt32, store String, at DateTime, amount_cents Int64) "
        "ENGINE = MergeTree ORDER BY id"
    )
    start = datetime(2026, 11, 22, 10, 0, 0)
    ids = list(range(10_000))
    columns = [ids, [f"store-{i % 7}" for i in ids], [start + timedelta(seconds=i) for i in ids], [i * 3 for i in ids]]

    clickhouse_db.execute("INSERT INTO smoke (id, store, at, amount_cents) VALUES", columns, columnar=True)

    assert clickhouse_db.execute("SELECT count(), sum(amount_cents), uniqExact(store) FROM smoke") == [
        (10_000, 3 * sum(ids), 7)
    ]
    assert clickhouse_db.execute("SELECT id, store, at FROM smoke WHERE id = 9999") == [
        (9999, "store-3", start + timedelta(seconds=9999))
    ]
