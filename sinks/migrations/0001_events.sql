-- Every accepted event with the person it resolved to at ingest; hashed identifiers only.
-- Deduplicated on the event: a copy has the same type, time and id, hence the same sort key, and
-- FINAL (or uniqExact(event_id)) counts it once.
CREATE TABLE IF NOT EXISTS events
(
    event_id String,
    event_type String,
    occurred_at_ms Int64,
    occurred_at DateTime('UTC') DEFAULT toDateTime(intDiv(occurred_at_ms, 1000), 'UTC'),
    ingested_at_ms Int64,
    ingested_at DateTime('UTC') DEFAULT toDateTime(intDiv(ingested_at_ms, 1000), 'UTC'),
    is_late UInt8,
    person_id String,
    channel String,
    source_id Nullable(String),
    member_id Nullable(String),
    device_id Nullable(String),
    wifi_mac_hash Nullable(String),
    phone_hash Nullable(String),
    store_id String,
    consent_marketing Nullable(UInt8),
    property_keys Array(String),
    property_values Array(String),
    page Nullable(String),
    sku Nullable(String),
    category Nullable(String),
    search_query Nullable(String),
    campaign Nullable(String),
    checkin_kind String,
    ap_id Nullable(String),
    rssi Nullable(Int16),
    order_id Nullable(String),
    status String,
    amount_cents Nullable(Int64),
    currency Nullable(String),
    item_skus Array(String),
    item_quantities Array(UInt32),
    item_prices_cents Array(Int64),
    platform String,
    target Nullable(String),
    complaint_id Nullable(String),
    complaint_category String,
    severity String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(occurred_at_ms, 1000), 'UTC'))
ORDER BY (event_type, occurred_at_ms, event_id);
