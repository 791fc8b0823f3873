-- O2O conversion, visit to paid purchase, per store.
--
-- Meaning: of the visitor visits that started in the period, how many saw a paid purchase by the
--   same person at the same store between the visit start and 15 minutes (the default visit
--   timeout) after its end.
-- Parameters: {from_ms} <= visit start < {to_ms}; {store} ('' = every store). Purchases are
--   looked for up to a day after {to_ms} (visits that run past the period end).
-- Exactness: store_visits FINAL, events FINAL; a visit converts at most once however many
--   purchases (or copies of one) match it.
-- Identity: visits and purchases both join person_map before they are matched by person.
-- Columns: store_id, visits, converted_visits, conversion_rate
SELECT
    store_id,
    count() AS visits,
    sum(converted) AS converted_visits,
    round(converted_visits / visits, 4) AS conversion_rate
FROM
(
    SELECT visit_id, store_id,
           max(purchase_at_ms >= started_at_ms AND purchase_at_ms <= ended_at_ms + 900000) AS converted
    FROM
    (
        SELECT visit_id, store_id, if(merged_into != '', merged_into, person_id) AS person, started_at_ms, ended_at_ms
        FROM
        (
            SELECT visit_id, store_id, person_id, started_at_ms, ended_at_ms
            FROM store_visits FINAL
            WHERE state != 'absorbed' AND visit_class = 'visitor'
              AND started_at_ms >= {from_ms} AND started_at_ms < {to_ms}
              AND ({store} = '' OR store_id = {store})
        ) AS with_person
        ANY LEFT JOIN person_map USING (person_id)
    ) AS lhs
    ALL LEFT JOIN
    (
        SELECT store_id, if(merged_into != '', merged_into, person_id) AS person, occurred_at_ms AS purchase_at_ms
        FROM
        (
            SELECT store_id, person_id, occurred_at_ms
            FROM events FINAL
            WHERE event_type = 'purchase' AND status = 'paid' AND store_id != ''
              AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms} + 86400000
        ) AS with_person
        ANY LEFT JOIN person_map USING (person_id)
    ) AS rhs USING (store_id, person)
    GROUP BY visit_id, store_id
)
GROUP BY store_id
ORDER BY store_id
