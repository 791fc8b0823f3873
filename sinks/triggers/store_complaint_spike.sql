-- Store complaint spike: stores with at least {threshold} complaints in the sliding window
-- [{now_ms} - {window_ms}, {now_ms}) of event time (rule type store_complaint_spike).
--
-- Meaning: one row per store whose complaint events (event_type 'complaint', with a store) in the
--   window reach the threshold. The start is inclusive and the end, the evaluation time, exclusive.
--   Complaints without a store ('') are left out: they alert no store.
-- Parameters: {now_ms} the evaluation time (epoch ms, event time), {window_ms} the rule's
--   window_min in ms, {threshold} the rule's threshold.
-- Exactness: events FINAL, so a complaint delivered twice counts once.
-- Identity: not needed (a store-level rule).
-- Columns (pipeline/rules/store_complaint_spike.py ROW_FIELDS): store_id, window_start (ms),
--   window_end (ms), complaints, complaint_event_ids (in event-time order; ties by event id).
SELECT
    store_id,
    toInt64({now_ms}) - toInt64({window_ms}) AS window_start,
    toInt64({now_ms}) AS window_end,
    count() AS complaints,
    arrayMap(x -> tupleElement(x, 2), arraySort(groupArray(tuple(occurred_at_ms, event_id)))) AS complaint_event_ids
FROM events FINAL
WHERE event_type = 'complaint'
  AND store_id != ''
  AND occurred_at_ms >= toInt64({now_ms}) - toInt64({window_ms})
  AND occurred_at_ms < toInt64({now_ms})
GROUP BY store_id
HAVING complaints >= {threshold}
ORDER BY store_id
