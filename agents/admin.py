"""Topic administration for `o2o init`: create what the catalogue lists, leave what exists."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.config import Settings
from pipeline.topics import TopicSpec, catalogue


def create_topics(settings: Settings) -> list[tuple[TopicSpec, str]]:
    """(spec, outcome) per topic; outcome is 'created', 'exists' or 'exists with N partitions'."""
    admin = AdminClient(settings.kafka_client_config())
    try:
        existing = admin.list_topics(timeout=10).topics
    except KafkaException as exc:
        raise ConnectionError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc.args[0].str()}; "
            "start the local stack with `o2o stack up`, or check kafka_bootstrap_servers and security settings"
        ) from None
    specs = catalogue(settings)
    new = [
        # retention.ms is explicit: some clients need it in DescribeConfigs, and Tansu reports none otherwise.
        NewTopic(s.name, s.partitions, settings.topic_replication_factor, config={"retention.ms": str(s.retention_ms)})
        for s in specs if s.name not in existing
    ]
    futures = admin.create_topics(new, request_timeout=30) if new else {}
    outcomes = []
    for spec in specs:
        if spec.name in futures:
            try:
                futures[spec.name].result(timeout=30)
                outcomes.append((spec, "created"))
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                outcomes.append((spec, "exists"))
        else:
            count = len(existing[spec.name].partitions)
            outcomes.append((spec, "exists" if count == spec.partitions else f"exists with {count} partitions"))
    return outcomes


def migrate_clickhouse(settings: Settings) -> list[str]:
    """Apply the warehouse migrations (sinks/migrations); the names applied now, [] when up to date."""
    from clickhouse_driver import Client
    from clickhouse_driver.errors import Error as ClickHouseError

    from sinks.migrate import apply_migrations

    client = Client(**settings.clickhouse_client_kwargs(database="default"), connect_timeout=5)
    try:
        return apply_migrations(client, settings.clickhouse_database)
    except (ClickHouseError, OSError, EOFError) as exc:
        raise ConnectionError(
            f"cannot apply the ClickHouse schema at {settings.clickhouse_host}:{settings.clickhouse_port}: {exc}; "
            "start the local stack with `o2o stack up`, or check the clickhouse_* settings"
        ) from None
    finally:
        client.disconnect()
