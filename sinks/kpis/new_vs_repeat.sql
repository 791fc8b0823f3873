-- New vs repeat visitors per store.
--
-- Meaning: persons with a visitor visit at the store in the period; a person is *new* when their
--   first visitor visit at that store ever started in the period, *repeat* when they had one
--   there before the period started.
-- Parameters: {from_ms}, {to_ms} (visit start); {store} ('' = every store).
-- Exactness: store_visits FINAL (latest version of each visit), absorbed ones dropped.
-- Identity: visits join person_map, so an anonymous device's earlier visits count for the member
--   it was merged into (ANY LEFT JOIN person_map USING (person_id); person = merged_into or itself).
-- Columns: store_id, visiting_persons, new_visitors, repeat_visitors
SELECT
    store_id,
    count() AS visiting_persons,
    countIf(first_visit_ms >= {from_ms}) AS new_visitors,
    countIf(first_visit_ms < {from_ms}) AS repeat_visitors
FROM
(
    SELECT store_id, person, min(started_at_ms) AS first_visit_ms, max(started_at_ms) AS last_visit_ms
    FROM
    (
        SELECT store_id, if(merged_into != '', merged_into, person_id) AS person, started_at_ms
        FROM
        (
            SELECT store_id, person_id, started_at_ms
            FROM store_visits FINAL
            WHERE state != 'absorbed' AND visit_class = 'visitor' AND started_at_ms < {to_ms}
              AND ({store} = '' OR store_id = {store})
        ) AS with_person
        ANY LEFT JOIN person_map USING (person_id)
    )
    GROUP BY store_id, person
    HAVING last_visit_ms >= {from_ms}
)
GROUP BY store_id
ORDER BY store_id
