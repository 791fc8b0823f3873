-- Person profiles, for dashboards: first seen, last seen, visits, lifetime paid revenue, last store
-- and marketing consent per person, from the pre-aggregated person_profiles.
--
-- Meaning: lifetime values of each person (after merges) whose first..last seen span overlaps the
--   period: first_seen_ms / last_seen_ms are event times of their first and last events, visits
--   their closed visits classed visitor, lifetime_paid_cents the sum of their paid purchases,
--   last_store the store of their latest event that had one ('' if none), consent_marketing the
--   latest known consent (1 yes, 0 no, NULL never stated).
-- Parameters: {from_ms}, {to_ms} select persons seen around the period. {store} does not apply.
-- Exactness: min/max/argMax and sets of ids ((event id, amount) pairs for revenue) are idempotent,
--   so copies of events and visit updates count once.
-- Identity: each row holds the states of a person at ingest; rows re-pointed through person_map
--   are merged, which is exact because every column is a mergeable aggregate state.
-- Columns: person_id, first_seen_ms, last_seen_ms, visits, lifetime_paid_cents, last_store,
--   consent_marketing
SELECT
    person AS person_id,
    minIfMerge(first_seen_state) AS first_seen_ms,
    maxIfMerge(last_seen_state) AS last_seen_ms,
    uniqExactIfMerge(visits_state) AS visits,
    arraySum(arrayMap(x -> tupleElement(x, 2), groupUniqArrayIfMerge(revenue_state))) AS lifetime_paid_cents,
    argMaxIfMerge(last_store_state) AS last_store,
    if(argMaxIfMerge(consent_state) = 0, NULL, toUInt8(argMaxIfMerge(consent_state) = 2)) AS consent_marketing
FROM
(
    SELECT
        if(merged_into != '', merged_into, person_id) AS person,
        first_seen_ms AS first_seen_state,
        last_seen_ms AS last_seen_state,
        visits AS visits_state,
        paid_revenue AS revenue_state,
        last_store AS last_store_state,
        consent AS consent_state
    FROM person_profiles
    ANY LEFT JOIN person_map USING (person_id)
)
GROUP BY person
HAVING last_seen_ms >= {from_ms} AND first_seen_ms < {to_ms}
ORDER BY person_id
