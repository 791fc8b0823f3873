-- Triggers fired and suppressed per rule.
--
-- Meaning: decisions of the trigger engine that fell in the period (by fired_at, the event time
--   at which the rule fired or would have): fired triggers and suppressions (consent, complaint
--   suppression, cooldown, daily cap, quiet hours) per rule, with its kind (marketing / service).
-- Parameters: {from_ms} <= fired_at < {to_ms}; {store} ('' = all; else decisions at that store).
-- Exactness: triggers_log FINAL; trigger ids are deterministic, so a replayed decision counts once.
-- Identity: not needed (decisions, not persons).
-- Columns: rule, kind, fired, suppressed
SELECT
    rule,
    kind,
    countIf(outcome = 'fired') AS fired,
    countIf(outcome = 'suppressed') AS suppressed
FROM triggers_log FINAL
WHERE fired_at_ms >= {from_ms} AND fired_at_ms < {to_ms}
  AND ({store} = '' OR store_id = {store})
GROUP BY rule, kind
ORDER BY rule, kind
