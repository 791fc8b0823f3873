-- Complaint rate: complaints per 100 paid orders.
--
-- Meaning: complaint events in the period, and distinct orders with a paid purchase event in the
--   period; complaints_per_100_paid_orders = complaints * 100 / paid_orders (NULL without orders).
-- Parameters: {from_ms} <= event time < {to_ms}; {store} ('' = all; else complaints and orders
--   recorded at that store).
-- Exactness: complaints are distinct event ids, orders distinct order ids (duplicates count once).
-- Identity: not needed (events and orders, not persons).
-- Columns: complaints, paid_orders, complaints_per_100_paid_orders
SELECT
    uniqExactIf(event_id, event_type = 'complaint') AS complaints,
    uniqExactIf(ifNull(order_id, ''), event_type = 'purchase') AS paid_orders,
    if(paid_orders = 0, NULL, round(complaints * 100 / paid_orders, 2)) AS complaints_per_100_paid_orders
FROM events
WHERE (event_type = 'complaint' OR (event_type = 'purchase' AND status = 'paid'))
  AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
  AND ({store} = '' OR store_id = {store})
