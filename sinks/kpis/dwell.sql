-- Dwell distribution: visitor visits per store by dwell-time bucket.
--
-- Meaning: how long visitors stayed: visits classed visitor that started in the period, counted
--   in the buckets 0-5, 5-15, 15-30, 30-60 and 60+ minutes of dwell (first to last sighting).
--   Buckets without visits are left out.
-- Parameters: {from_ms} <= visit start < {to_ms}; {store} ('' = every store).
-- Exactness: store_visits FINAL (latest version of each visit), absorbed ones dropped.
-- Identity: not needed.
-- Columns: store_id, dwell_bucket, bucket_from_s, visits
SELECT
    store_id,
    multiIf(dwell_s < 300, '0-5 min', dwell_s < 900, '5-15 min', dwell_s < 1800, '15-30 min',
            dwell_s < 3600, '30-60 min', '60+ min') AS dwell_bucket,
    multiIf(dwell_s < 300, 0, dwell_s < 900, 300, dwell_s < 1800, 900, dwell_s < 3600, 1800, 3600) AS bucket_from_s,
    count() AS visits
FROM store_visits FINAL
WHERE state != 'absorbed' AND visit_class = 'visitor'
  AND started_at_ms >= {from_ms} AND started_at_ms < {to_ms}
  AND ({store} = '' OR store_id = {store})
GROUP BY store_id, dwell_bucket, bucket_from_s
ORDER BY store_id, bucket_from_s
