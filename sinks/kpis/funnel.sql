-- Funnel: page views -> unique browsing persons -> persons with an order -> persons with a paid order.
--
-- Meaning: in the period, page views are browse events; browsing persons made at least one; of
--   them, ordering persons have a purchase event of any status (an order) and paying persons a
--   paid purchase, at or after their first page view in the period (and before its end). Rates:
--   order_rate = ordering / browsing, paid_rate = paying / ordering, conversion_rate = paying /
--   browsing. One row with scope 'all' (campaign ''), then one per campaign (scope 'campaign';
--   campaign '' = page views without a campaign), where a person's first page view is their first
--   one *of that campaign*.
-- Parameters: {from_ms} <= event time < {to_ms}. {store} does not apply (browsing is online).
-- Exactness: events FINAL, so a duplicated page view counts once; persons are counted once.
-- Identity: page views and purchases join person_map: an anonymous device's page views and the
--   member's later order are one person going down the funnel.
-- Columns: scope, campaign, page_views, browsing_persons, ordering_persons, paying_persons,
--   order_rate, paid_rate, conversion_rate
SELECT
    scope,
    campaign,
    sum(views) AS page_views,
    count() AS browsing_persons,
    countIf(last_order_ms >= first_view_ms) AS ordering_persons,
    countIf(last_paid_ms >= first_view_ms) AS paying_persons,
    if(browsing_persons = 0, NULL, round(ordering_persons / browsing_persons, 4)) AS order_rate,
    if(ordering_persons = 0, NULL, round(paying_persons / ordering_persons, 4)) AS paid_rate,
    if(browsing_persons = 0, NULL, round(paying_persons / browsing_persons, 4)) AS conversion_rate
FROM
(
    SELECT
        tupleElement(breakdown, 1) AS scope,
        tupleElement(breakdown, 2) AS campaign,
        person,
        count() AS views,
        min(occurred_at_ms) AS first_view_ms
    FROM
    (
        SELECT if(merged_into != '', merged_into, person_id) AS person, occurred_at_ms, browse_campaign
        FROM
        (
            SELECT person_id, occurred_at_ms, ifNull(campaign, '') AS browse_campaign
            FROM events FINAL
            WHERE event_type = 'browse' AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
        ) AS with_person
        ANY LEFT JOIN person_map USING (person_id)
    )
    ARRAY JOIN [tuple('all', ''), tuple('campaign', browse_campaign)] AS breakdown
    GROUP BY scope, campaign, person
) AS lhs
ALL LEFT JOIN
(
    SELECT person, max(occurred_at_ms) AS last_order_ms, maxIf(occurred_at_ms, status = 'paid') AS last_paid_ms
    FROM
    (
        SELECT if(merged_into != '', merged_into, person_id) AS person, occurred_at_ms, status
        FROM
        (
            SELECT person_id, occurred_at_ms, status
            FROM events FINAL
            WHERE event_type = 'purchase' AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
        ) AS with_person
        ANY LEFT JOIN person_map USING (person_id)
    )
    GROUP BY person
) AS rhs USING (person)
GROUP BY scope, campaign
ORDER BY scope, campaign
