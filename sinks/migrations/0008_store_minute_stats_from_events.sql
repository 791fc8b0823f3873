-- Feeds store_minute_stats from each block inserted into events.
CREATE MATERIALIZED VIEW IF NOT EXISTS store_minute_stats_from_events TO store_minute_stats AS
SELECT
    store_id,
    toStartOfMinute(occurred_at) AS minute,
    uniqExactIfState(toString(''), toUInt8(0)) AS visitors,
    uniqExactIfState(toString(''), toUInt8(0)) AS passersby,
    groupUniqArrayIfState(person_id, toUInt8(1)) AS persons,
    uniqExactIfState(event_id, event_type = 'purchase' AND status = 'paid') AS paid_purchases,
    groupUniqArrayIfState(tuple(event_id, ifNull(amount_cents, toInt64(0))), event_type = 'purchase' AND status = 'paid') AS paid_revenue,
    uniqExactIfState(event_id, event_type = 'share') AS shares,
    uniqExactIfState(event_id, event_type = 'complaint') AS complaints
FROM events
WHERE store_id != ''
GROUP BY store_id, minute;
