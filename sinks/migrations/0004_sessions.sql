-- Session updates; FINAL gives the latest version of each session (drop state 'absorbed').
CREATE TABLE IF NOT EXISTS sessions
(
    session_id String,
    version UInt64,
    state String,
    person_id String,
    absorbed_into Nullable(String),
    started_at_ms Int64,
    started_at DateTime('UTC') DEFAULT toDateTime(intDiv(started_at_ms, 1000), 'UTC'),
    ended_at_ms Int64,
    ended_at DateTime('UTC') DEFAULT toDateTime(intDiv(ended_at_ms, 1000), 'UTC'),
    event_count UInt32,
    count_types Array(String),
    count_values Array(UInt32),
    online_channels Array(String),
    offline_channels Array(String),
    stores Array(String),
    revenue_cents Int64,
    has_complaint UInt8,
    has_share UInt8,
    online_to_offline UInt8,
    event_ids Array(String),
    emitted_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY session_id;
