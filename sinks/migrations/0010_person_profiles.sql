-- Per person at ingest; sinks/kpis/person_profiles.sql merges the states of persons merged into
-- one (through person_map), which is exact because every state here is mergeable.
CREATE TABLE IF NOT EXISTS person_profiles
(
    person_id String,
    first_seen_ms AggregateFunction(minIf, Int64, UInt8),
    last_seen_ms AggregateFunction(maxIf, Int64, UInt8),
    visits AggregateFunction(uniqExactIf, String, UInt8),
    paid_revenue AggregateFunction(groupUniqArrayIf, Tuple(String, Int64), UInt8),
    last_store AggregateFunction(argMaxIf, String, Int64, UInt8),
    consent AggregateFunction(argMaxIf, UInt8, Int64, UInt8)
)
ENGINE = AggregatingMergeTree()
ORDER BY person_id;
