-- Feeds person_profiles from each block inserted into events.
CREATE MATERIALIZED VIEW IF NOT EXISTS person_profiles_from_events TO person_profiles AS
SELECT
    person_id,
    minIfState(occurred_at_ms, toUInt8(1)) AS first_seen_ms,
    maxIfState(occurred_at_ms, toUInt8(1)) AS last_seen_ms,
    uniqExactIfState(toString(''), toUInt8(0)) AS visits,
    groupUniqArrayIfState(tuple(event_id, ifNull(amount_cents, toInt64(0))), event_type = 'purchase' AND status = 'paid') AS paid_revenue,
    argMaxIfState(store_id, occurred_at_ms, store_id != '') AS last_store,
    argMaxIfState(toUInt8(ifNull(consent_marketing, 0) + 1), occurred_at_ms, isNotNull(consent_marketing)) AS consent
FROM events
GROUP BY person_id;
