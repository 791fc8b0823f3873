-- Data heat: members active in the period / members seen at any time up to its end, in percent.
--
-- Meaning: a member is a person whose id is a member id ('m:...') after re-pointing; active when
--   any event of theirs has an event time in the period; seen when any has an event time before
--   the period end. By event time, so an event that arrived late still counts in its own period.
-- Parameters: {from_ms} <= event time < {to_ms}. {store} does not apply.
-- Exactness: persons are counted with uniqExact, so duplicates change nothing (no FINAL needed).
-- Identity: events join person_map, so a device's events before its owner logged in count as
--   that member's activity.
-- Columns: active_members, members, heat_pct
SELECT
    uniqExactIf(person, occurred_at_ms >= {from_ms}) AS active_members,
    uniqExact(person) AS members,
    if(members = 0, NULL, round(active_members * 100 / members, 2)) AS heat_pct
FROM
(
    SELECT if(merged_into != '', merged_into, person_id) AS person, occurred_at_ms
    FROM
    (
        SELECT person_id, occurred_at_ms
        FROM events
        WHERE occurred_at_ms < {to_ms}
    ) AS with_person
    ANY LEFT JOIN person_map USING (person_id)
)
WHERE person LIKE 'm:%'
