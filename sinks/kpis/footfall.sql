-- Footfall: visitors, passersby and capture rate per store.
--
-- Meaning: store visits (Wi-Fi presence, sessionised by the journey stage) that started in the
--   period, by class: a visitor passed the dwell and signal thresholds, a passerby did not.
--   capture_rate = visitors / (visitors + passersby). Visits are counted, not persons (a person
--   coming twice is two visits; new_vs_repeat counts persons).
-- Parameters: {from_ms} <= visit start < {to_ms}; {store} ('' = every store).
-- Exactness: store_visits FINAL is the latest version of each visit; absorbed ones are dropped.
-- Identity: not needed (visits, not persons).
-- Columns: store_id, visitors, passersby, capture_rate
SELECT
    store_id,
    countIf(visit_class = 'visitor') AS visitors,
    countIf(visit_class = 'passerby') AS passersby,
    round(visitors / (visitors + passersby), 4) AS capture_rate
FROM store_visits FINAL
WHERE state != 'absorbed'
  AND started_at_ms >= {from_ms} AND started_at_ms < {to_ms}
  AND ({store} = '' OR store_id = {store})
GROUP BY store_id
ORDER BY store_id
