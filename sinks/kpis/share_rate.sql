-- Share rate: persons who shared / persons who paid.
--
-- Meaning: in the period, sharing_persons made at least one share event and paying_persons at
--   least one paid purchase; share_rate = sharing_persons / paying_persons (NULL without payers).
--   A sharer need not be a payer.
-- Parameters: {from_ms} <= event time < {to_ms}; {store} ('' = all; else only shares and
--   payments recorded at that store).
-- Exactness: persons are counted with uniqExact, so duplicated events cannot inflate them.
-- Identity: events join person_map, so shares from an anonymous device and payments by the
--   member it became are one person.
-- Columns: sharing_persons, paying_persons, share_rate
SELECT
    uniqExactIf(person, event_type = 'share') AS sharing_persons,
    uniqExactIf(person, event_type = 'purchase') AS paying_persons,
    if(paying_persons = 0, NULL, round(sharing_persons / paying_persons, 4)) AS share_rate
FROM
(
    SELECT if(merged_into != '', merged_into, person_id) AS person, event_type
    FROM
    (
        SELECT person_id, event_type
        FROM events
        WHERE (event_type = 'share' OR (event_type = 'purchase' AND status = 'paid'))
          AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
          AND ({store} = '' OR store_id = {store})
    ) AS with_person
    ANY LEFT JOIN person_map USING (person_id)
)
