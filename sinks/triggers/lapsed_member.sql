-- Lapsed members: members with no store visit and no purchase for the rule's days before the
-- evaluation time {now_ms} (rule type lapsed_member).
--
-- Meaning: a member is a person 'm:<member_id>'. Their activity is a store visit -- a wifi_checkin
--   at a store of any kind but 'probe' (associate, portal_login, disassociate: the phone was on
--   the store Wi-Fi; a probe may be a passer-by in the street) -- or a paid purchase, online or in
--   a store. One row per member whose latest activity before {now_ms} is at or before
--   {now_ms} - {lapse_ms} (exactly `days` old counts as lapsed). Members with no activity at all
--   are not listed (there is no lapse to win back). last_event_id and store_id are those of the
--   latest activity (store_id NULL for an online purchase); ties in time go to the larger event id.
-- Marketing controls done here (a scan has no per-person state): members whose latest stated
--   consent_marketing before {now_ms} is false are left out (a refusal and a grant at the same
--   millisecond count as a refusal), and so are members with a complaint in the complaint
--   suppression period before {now_ms} ({complaint_suppress_ms}, 0: none).
-- Parameters: {now_ms} the evaluation time (epoch ms, event time), {lapse_ms} the rule's days
--   in ms, {complaint_suppress_ms} complaint_recovery's suppress_marketing_days in ms.
-- Exactness: events FINAL (a copy counts once); max and argMax are idempotent anyway.
-- Identity: events are re-pointed through person_map, so the visits and purchases of an anonymous
--   device or MAC later merged into the member count as the member's, and so do its consent
--   statements and complaints.
-- Columns (pipeline/rules/lapsed_member.py ROW_FIELDS, plus store_id): person_id, member_id,
--   last_activity_at (ms), last_event_id, evaluated_at (ms), store_id.
SELECT
    person AS person_id,
    substring(person, 3) AS member_id,
    last_activity_at,
    last_event_id,
    toInt64({now_ms}) AS evaluated_at,
    if(last_store = '', NULL, last_store) AS store_id
FROM
(
    SELECT
        if(merged_into != '', merged_into, person_id) AS person,
        countIf(activity) AS activities,
        maxIf(occurred_at_ms, activity) AS last_activity_at,
        argMaxIf(event_id, tuple(occurred_at_ms, event_id), activity) AS last_event_id,
        argMaxIf(store_id, tuple(occurred_at_ms, event_id), activity) AS last_store,
        -- 2 yes, 1 no, 0 never stated; at the same millisecond a refusal wins
        argMaxIf(toUInt8(ifNull(consent_marketing, 0) + 1),
                 tuple(occurred_at_ms, toUInt8(ifNull(consent_marketing, 1) = 0)),
                 isNotNull(consent_marketing)) AS consent,
        maxIf(occurred_at_ms, event_type = 'complaint') AS last_complaint_at
    FROM
    (
        SELECT
            person_id, event_id, event_type, occurred_at_ms, store_id, consent_marketing,
            toUInt8((event_type = 'wifi_checkin' AND checkin_kind != 'probe' AND store_id != '')
                    OR (event_type = 'purchase' AND status = 'paid')) AS activity
        FROM events FINAL
        WHERE occurred_at_ms < toInt64({now_ms})
          AND (event_type IN ('wifi_checkin', 'purchase', 'complaint') OR isNotNull(consent_marketing))
    ) AS e
    ANY LEFT JOIN (SELECT person_id, merged_into FROM person_map) AS m USING (person_id)
    GROUP BY person
)
WHERE substring(person, 1, 2) = 'm:'
  AND activities > 0
  AND last_activity_at <= toInt64({now_ms}) - toInt64({lapse_ms})
  AND consent != 1
  AND last_complaint_at <= toInt64({now_ms}) - toInt64({complaint_suppress_ms})
ORDER BY person_id
