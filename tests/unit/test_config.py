"""Settings: defaults < config file < environment < explicit overrides; errors name the setting."""

import pytest

from pipeline.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("O2O_"):
            monkeypatch.delenv(key)


def test_defaults_need_no_file_and_no_environment():
    settings = load_settings()
    assert settings.mode == "dev"
    assert settings.topic("browse") == "o2o.browse"
    assert settings.kafka_client_config()["bootstrap.servers"] == "127.0.0.1:19092"


def test_toml_sections_flatten_to_setting_names(tmp_path):
    path = tmp_path / "o2o.toml"
    path.write_text('[kafka]\nbootstrap_servers = "k1:9092,k2:9092"\n[clickhouse]\nport = 9000\n')
    settings = load_settings(path)
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert settings.clickhouse_port == 9000


def test_yaml_file_and_flat_keys_work_too(tmp_path):
    path = tmp_path / "o2o.yaml"
    path.write_text("topic_prefix: shop\nkafka:\n  extra:\n    linger.ms: '20'\n")
    settings = load_settings(path)
    assert settings.topic("dlq") == "shop.dlq"
    assert settings.kafka_client_config()["linger.ms"] == "20"


def test_environment_beats_the_file_and_overrides_beat_both(tmp_path, monkeypatch):
    path = tmp_path / "o2o.toml"
    path.write_text('topic_prefix = "from_file"\ntopic_partitions = 2\n')
    monkeypatch.setenv("O2O_TOPIC_PREFIX", "from_env")
    settings = load_settings(path, topic_partitions=8)
    assert (settings.topic_prefix, settings.topic_partitions) == ("from_env", 8)


def test_config_file_from_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "o2o.toml"
    path.write_text('topic_prefix = "envfile"\n')
    monkeypatch.setenv("O2O_CONFIG", str(path))
    assert load_settings().topic_prefix == "envfile"


def test_bad_value_names_setting_source_and_accepted_values(monkeypatch):
    monkeypatch.setenv("O2O_MODE", "production")
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "'mode'" in message and "O2O_MODE" in message and "'dev' or 'prod'" in message


def test_unknown_setting_in_file_is_refused(tmp_path):
    path = tmp_path / "o2o.toml"
    path.write_text("[kafka]\nbootstrap = 'x:1'\n")
    with pytest.raises(ConfigError, match="unknown setting 'kafka_bootstrap'"):
        load_settings(path)


def test_unknown_environment_variable_is_refused(monkeypatch):
    monkeypatch.setenv("O2O_KAFKA_BOOTSTRAP", "x:1")
    with pytest.raises(ConfigError, match="O2O_KAFKA_BOOTSTRAP"):
        load_settings()


def test_bootstrap_servers_without_port_is_refused(monkeypatch):
    monkeypatch.setenv("O2O_KAFKA_BOOTSTRAP_SERVERS", "broker-1")
    with pytest.raises(ConfigError, match="host:port"):
        load_settings()


def test_missing_or_unparsable_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_secrets_never_appear_in_dumps_or_errors(monkeypatch):
    monkeypatch.setenv("O2O_CLICKHOUSE_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("O2O_KAFKA_SASL_PASSWORD", "kafka-secret")
    settings = load_settings()
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in settings.model_dump_json()
    assert settings.clickhouse_client_kwargs()["password"] == "hunter2-secret"
    assert settings.kafka_client_config()["sasl.password"] == "kafka-secret"
    monkeypatch.setenv("O2O_HASH_SECRET", "")
    monkeypatch.setenv("O2O_TOPIC_PARTITIONS", "-1")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "hunter2-secret" not in str(error.value)


def test_prod_mode_without_hash_secret_refuses_to_hash(monkeypatch):
    monkeypatch.setenv("O2O_MODE", "prod")
    settings = load_settings()
    with pytest.raises(ConfigError, match="hash_secret.*required in prod"):
        settings.effective_hash_secret
    monkeypatch.setenv("O2O_HASH_SECRET", "k")
    assert load_settings().effective_hash_secret == b"k"
