-- person_id -> merged_into for every person merged into another; KPIs join it with ANY LEFT JOIN
-- person_map USING (person_id) and take if(merged_into != '', merged_into, person_id) (robust to
-- join_use_nulls: an unmatched row has '' or NULL).
CREATE VIEW IF NOT EXISTS person_map AS
SELECT from_person AS person_id, argMax(to_person, version) AS merged_into
FROM identity_links
GROUP BY from_person;
