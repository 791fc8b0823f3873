-- Person re-pointing: from_person now belongs to to_person, always the final person (the sink
-- keeps the closure: sinks.writer.apply_person_merges). Latest version per from_person wins.
CREATE TABLE IF NOT EXISTS identity_links
(
    from_person String,
    to_person String,
    merged_at_ms Int64,
    event_id String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY from_person;
