-- Feeds person_profiles from each block inserted into store_visits.
CREATE MATERIALIZED VIEW IF NOT EXISTS person_profiles_from_visits TO person_profiles AS
SELECT
    person_id,
    minIfState(toInt64(0), toUInt8(0)) AS first_seen_ms,
    maxIfState(toInt64(0), toUInt8(0)) AS last_seen_ms,
    uniqExactIfState(visit_id, visit_class = 'visitor') AS visits,
    groupUniqArrayIfState(tuple(toString(''), toInt64(0)), toUInt8(0)) AS paid_revenue,
    argMaxIfState(toString(''), toInt64(0), toUInt8(0)) AS last_store,
    argMaxIfState(toUInt8(0), toInt64(0), toUInt8(0)) AS consent
FROM store_visits
WHERE state = 'closed'
GROUP BY person_id;
