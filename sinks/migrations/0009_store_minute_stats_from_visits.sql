-- Feeds store_minute_stats from each block inserted into store_visits.
CREATE MATERIALIZED VIEW IF NOT EXISTS store_minute_stats_from_visits TO store_minute_stats AS
SELECT
    store_id,
    toStartOfMinute(started_at) AS minute,
    uniqExactIfState(visit_id, visit_class = 'visitor') AS visitors,
    uniqExactIfState(visit_id, visit_class = 'passerby') AS passersby,
    groupUniqArrayIfState(toString(''), toUInt8(0)) AS persons,
    uniqExactIfState(toString(''), toUInt8(0)) AS paid_purchases,
    groupUniqArrayIfState(tuple(toString(''), toInt64(0)), toUInt8(0)) AS paid_revenue,
    uniqExactIfState(toString(''), toUInt8(0)) AS shares,
    uniqExactIfState(toString(''), toUInt8(0)) AS complaints
FROM store_visits
WHERE state = 'closed'
GROUP BY store_id, minute;
