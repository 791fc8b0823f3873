-- Attributed conversions per rule: paid purchases within 48 h after a marketing trigger.
--
-- Meaning: a paid purchase in the period is attributed to the latest marketing trigger fired for
--   the same person in the 48 hours (172800000 ms) before it, by fired_at (last touch; service
--   triggers such as complaint alerts, suppressed firings and store-level triggers never take
--   credit). attributed_revenue_cents sums those purchases.
-- Parameters: {from_ms} <= purchase time < {to_ms} (the trigger may precede {from_ms});
--   {store} ('' = all; else purchases at that store).
-- Exactness: events FINAL and triggers_log FINAL; each purchase event is credited once.
-- Identity: purchases and triggers both join person_map: a trigger sent to an anonymous device
--   converts when the member it became pays.
-- Columns: rule, attributed_conversions, attributed_revenue_cents
SELECT
    rule,
    count() AS attributed_conversions,
    sum(amount) AS attributed_revenue_cents
FROM
(
    SELECT purchase_id, argMax(trigger_rule, trigger_at_ms) AS rule, any(purchase_amount) AS amount
    FROM
    (
        SELECT event_id AS purchase_id, if(merged_into != '', merged_into, person_id) AS person,
               occurred_at_ms AS purchase_at_ms, purchase_amount
        FROM
        (
            SELECT event_id, person_id, occurred_at_ms, ifNull(amount_cents, 0) AS purchase_amount
            FROM events FINAL
            WHERE event_type = 'purchase' AND status = 'paid'
              AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
              AND ({store} = '' OR store_id = {store})
        ) AS with_person
        ANY LEFT JOIN person_map USING (person_id)
    ) AS lhs
    ALL INNER JOIN
    (
        SELECT if(merged_into != '', merged_into, person_id) AS person, trigger_rule, trigger_at_ms
        FROM
        (
            SELECT person_id, rule AS trigger_rule, fired_at_ms AS trigger_at_ms
            FROM triggers_log FINAL
            WHERE outcome = 'fired' AND kind = 'marketing' AND person_id != ''
              AND fired_at_ms >= {from_ms} - 172800000 AND fired_at_ms < {to_ms}
        ) AS with_person
        ANY LEFT JOIN person_map USING (person_id)
    ) AS rhs USING (person)
    WHERE trigger_at_ms < purchase_at_ms AND purchase_at_ms <= trigger_at_ms + 172800000
    GROUP BY purchase_id
)
GROUP BY rule
ORDER BY rule
