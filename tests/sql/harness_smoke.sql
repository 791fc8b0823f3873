-- Proves the two-engine harness: MergeTree, AggregatingMergeTree fed by a materialized view,
-- -State/-Merge aggregates and windowFunnel, on ClickHouse 18.16 and on current ClickHouse.
CREATE TABLE harness_events (person String, at DateTime, kind String) ENGINE = MergeTree ORDER BY (person, at);
CREATE TABLE harness_per_kind (kind String, persons AggregateFunction(uniq, String)) ENGINE = AggregatingMergeTree ORDER BY kind;
CREATE MATERIALIZED VIEW harness_per_kind_mv TO harness_per_kind AS SELECT kind, uniqState(person) AS persons FROM harness_events GROUP BY kind;
INSERT INTO harness_events VALUES ('a', '2026-11-22 10:00:00', 'browse'), ('a', '2026-11-22 10:05:00', 'visit'), ('b', '2026-11-22 10:00:00', 'visit'), ('c', '2026-11-22 10:00:00', 'browse');
SELECT kind, uniqMerge(persons) FROM harness_per_kind GROUP BY kind ORDER BY kind;
SELECT countIf(steps = 2) FROM (SELECT person, windowFunnel(3600)(at, kind = 'browse', kind = 'visit') AS steps FROM harness_events GROUP BY person);
