-- Every trigger fired and every suppression, for audit and attribution: a Trigger record
-- (schemas/trigger.avsc) plus its outcome and, when suppressed, the reason. Trigger ids are
-- deterministic (rule + causing events), so a replayed decision lands on the same key and FINAL
-- reads it once.
CREATE TABLE IF NOT EXISTS triggers_log
(
    outcome String,
    trigger_id String,
    rule String,
    rule_type String,
    kind String,
    person_id String,
    member_id Nullable(String),
    store_id String,
    event_time_ms Int64,
    event_time DateTime('UTC') DEFAULT toDateTime(intDiv(event_time_ms, 1000), 'UTC'),
    fired_at_ms Int64,
    fired_at DateTime('UTC') DEFAULT toDateTime(intDiv(fired_at_ms, 1000), 'UTC'),
    published_at_ms Nullable(Int64),
    cause_event_ids Array(String),
    reason String,
    payload_record String,
    payload_keys Array(String),
    payload_values Array(String),
    payload_json String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(event_time_ms, 1000), 'UTC'))
ORDER BY (rule, trigger_id, outcome);
