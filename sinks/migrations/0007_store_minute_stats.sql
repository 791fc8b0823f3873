-- Per store per minute, for dashboards: merge the states (sinks/kpis/store_minutes.sql). Visits
-- count at their start minute once closed (a closed visit is final); events at their event minute.
-- Persons are kept as ids so queries can re-point them after merges.
CREATE TABLE IF NOT EXISTS store_minute_stats
(
    store_id String,
    minute DateTime('UTC'),
    visitors AggregateFunction(uniqExactIf, String, UInt8),
    passersby AggregateFunction(uniqExactIf, String, UInt8),
    persons AggregateFunction(groupUniqArrayIf, String, UInt8),
    paid_purchases AggregateFunction(uniqExactIf, String, UInt8),
    paid_revenue AggregateFunction(groupUniqArrayIf, Tuple(String, Int64), UInt8),
    shares AggregateFunction(uniqExactIf, String, UInt8),
    complaints AggregateFunction(uniqExactIf, String, UInt8)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (store_id, minute);
