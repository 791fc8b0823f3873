-- O2O conversion, online to offline: persons who browsed online and then visited a store within 7 days.
--
-- Meaning: of the persons who browsed in the period, how many started a visitor visit at a store
--   at most 7 days (604800 s) after one of those page views (windowFunnel over the person's browse
--   events and visit starts; the visit may fall after the period end). Second precision.
-- Parameters: {from_ms} <= browse time < {to_ms}; {store} ('' = a visit to any store, else to S).
-- Exactness: events FINAL and store_visits FINAL (latest version, absorbed dropped); persons are
--   counted once each.
-- Identity: both sides join person_map, so a page view made on an anonymous device followed by a
--   visit after the member logged in is one person that converted.
-- Columns: browsing_persons, visiting_persons, conversion_rate (NULL without browsing persons)
SELECT
    count() AS browsing_persons,
    countIf(steps = 2) AS visiting_persons,
    if(browsing_persons = 0, NULL, round(visiting_persons / browsing_persons, 4)) AS conversion_rate
FROM
(
    SELECT person, windowFunnel(604800)(at, kind = 'browse', kind = 'visit') AS steps
    FROM
    (
        SELECT if(merged_into != '', merged_into, person_id) AS person, at, kind
        FROM
        (
            SELECT person_id, occurred_at AS at, 'browse' AS kind
            FROM events FINAL
            WHERE event_type = 'browse' AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
            UNION ALL
            SELECT person_id, started_at AS at, 'visit' AS kind
            FROM store_visits FINAL
            WHERE state != 'absorbed' AND visit_class = 'visitor'
              AND started_at_ms >= {from_ms} AND started_at_ms < {to_ms} + 604800000
              AND ({store} = '' OR store_id = {store})
        ) AS with_person
        ANY LEFT JOIN person_map USING (person_id)
    )
    GROUP BY person
    HAVING countIf(kind = 'browse') > 0
)
