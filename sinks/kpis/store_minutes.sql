-- Per store per minute, for dashboards: visitors, passersby, unique persons, paid purchases, paid
-- revenue, shares and complaints, from the pre-aggregated store_minute_stats.
--
-- Meaning: one row per store and minute with activity in the period. Visits count at their start
--   minute once closed (a closed visit is final; open ones are in store_visits). Events count at
--   their event minute; unique_persons are the persons with any event at the store that minute.
-- Parameters: minutes starting in [{from_ms}, {to_ms}) (minute granularity); {store} ('' = all).
-- Exactness: the states are idempotent (uniqExact of ids, revenue as a set of (event id, amount)),
--   so copies of events or visit updates fed through the materialized views count once.
-- Identity: the minute keeps person ids, which join person_map before they are counted: an
--   anonymous device and the member it became, both seen in one minute, are one person.
-- Columns: store_id, minute, visitors, passersby, unique_persons, paid_purchases,
--   paid_revenue_cents, shares, complaints
SELECT
    store_id,
    minute,
    any(n_visitors) AS visitors,
    any(n_passersby) AS passersby,
    uniqExactIf(person, person != '') AS unique_persons,
    any(n_paid_purchases) AS paid_purchases,
    any(n_paid_revenue) AS paid_revenue_cents,
    any(n_shares) AS shares,
    any(n_complaints) AS complaints
FROM
(
    SELECT store_id, minute, n_visitors, n_passersby, n_paid_purchases, n_paid_revenue, n_shares, n_complaints,
           if(merged_into != '', merged_into, person_id) AS person
    FROM
    (
        SELECT store_id, minute, n_visitors, n_passersby, n_paid_purchases, n_paid_revenue, n_shares, n_complaints,
               person_id
        FROM
        (
            SELECT
                store_id,
                minute,
                uniqExactIfMerge(visitors) AS n_visitors,
                uniqExactIfMerge(passersby) AS n_passersby,
                groupUniqArrayIfMerge(persons) AS person_ids,
                uniqExactIfMerge(paid_purchases) AS n_paid_purchases,
                arraySum(arrayMap(x -> tupleElement(x, 2), groupUniqArrayIfMerge(paid_revenue))) AS n_paid_revenue,
                uniqExactIfMerge(shares) AS n_shares,
                uniqExactIfMerge(complaints) AS n_complaints
            FROM store_minute_stats
            WHERE minute >= toDateTime(intDiv({from_ms}, 1000)) AND minute < toDateTime(intDiv({to_ms}, 1000))
              AND ({store} = '' OR store_id = {store})
            GROUP BY store_id, minute
        )
        LEFT ARRAY JOIN person_ids AS person_id
    ) AS with_person
    ANY LEFT JOIN person_map USING (person_id)
)
GROUP BY store_id, minute
ORDER BY store_id, minute
