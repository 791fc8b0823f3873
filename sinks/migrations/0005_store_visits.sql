-- Store visit updates; FINAL gives the latest version of each visit (drop state 'absorbed').
CREATE TABLE IF NOT EXISTS store_visits
(
    visit_id String,
    version UInt64,
    state String,
    person_id String,
    store_id String,
    absorbed_into Nullable(String),
    started_at_ms Int64,
    started_at DateTime('UTC') DEFAULT toDateTime(intDiv(started_at_ms, 1000), 'UTC'),
    ended_at_ms Int64,
    ended_at DateTime('UTC') DEFAULT toDateTime(intDiv(ended_at_ms, 1000), 'UTC'),
    dwell_s UInt32,
    visit_class String,
    max_rssi Nullable(Int16),
    connected UInt8,
    ended_by_disassociate UInt8,
    emitted_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY visit_id;
