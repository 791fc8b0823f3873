-- Paid revenue (GMV), orders and average order value per store and channel.
--
-- Meaning: purchase events with status 'paid' in the period: gmv_cents is the sum of their
--   amounts, orders the number of distinct order ids, aov_cents = gmv_cents / orders. Online
--   orders without a store have store_id ''.
-- Parameters: {from_ms} <= payment event time < {to_ms}; {store} ('' = every store).
-- Exactness: events FINAL, so a duplicated payment event is summed once.
-- Identity: not needed (orders, not persons).
-- Columns: store_id, channel, gmv_cents, orders, aov_cents
SELECT
    store_id,
    channel,
    sum(ifNull(amount_cents, 0)) AS gmv_cents,
    uniqExact(ifNull(order_id, '')) AS orders,
    round(gmv_cents / orders, 2) AS aov_cents
FROM events FINAL
WHERE event_type = 'purchase' AND status = 'paid'
  AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
  AND ({store} = '' OR store_id = {store})
GROUP BY store_id, channel
ORDER BY store_id, channel
