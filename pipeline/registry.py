"""A Confluent-compatible schema registry as the codec's `RegistryClient` (O2O_SCHEMA_REGISTRY_URL).

`latest(subject)` registers the packaged schema of that subject (the one `EmbeddedRegistry` serves)
and returns the registry's id for it: registering is idempotent in Confluent's API, so producers
write with the schema this code was built with, under an id every registry-aware consumer can read.
`by_id(id)` fetches a writer schema and maps it to its subject (RecordNameStrategy: the record's
full name), as the embedded entries are. Ids are the registry's, never the embedded ones.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipeline.serde import EmbeddedRegistry, RegisteredSchema

SCHEMA_NOT_FOUND = 40403  # Confluent error code for an unknown schema id
REQUEST_TIMEOUT_S = 10  # the client's default is no timeout: a stuck registry would hang the agent


class RegistryError(RuntimeError):
    """The schema registry failed or refused a request; the message names the URL and what to check."""


class ConfluentRegistry:
    """`RegistryClient` over Confluent's REST API. `auth` is 'user:password' (or put it in the URL)."""

    def __init__(self, url: str, auth: str | None = None) -> None:
        self.url, url_auth = split_credentials(url)
        if auth and url_auth:
            raise ValueError(f"schema registry {self.url}: credentials given both in the URL and as auth; keep one")
        config: dict[str, Any] = {"url": self.url, "timeout": REQUEST_TIMEOUT_S}
        if auth or url_auth:
            config["basic.auth.user.info"] = auth or url_auth
        self._client = SchemaRegistryClient(config)
        self._packaged = EmbeddedRegistry()
        self._by_id: dict[int, RegisteredSchema] = {}
        self._latest: dict[str, RegisteredSchema] = {}

    def latest(self, subject: str) -> RegisteredSchema:
        registered = self._latest.get(subject)
        if registered is None:
            packaged = self._packaged.latest(subject)  # KeyError for a subject this pipeline has no schema of
            schema_id = self._call(
                f"registering subject {subject!r}",
                lambda: self._client.register_schema(subject, Schema(json.dumps(packaged.schema), "AVRO")),
            )
            registered = dataclasses.replace(packaged, schema_id=schema_id)
            self._latest[subject] = self._by_id[schema_id] = registered
        return registered

    def by_id(self, schema_id: int) -> RegisteredSchema:
        registered = self._by_id.get(schema_id)
        if registered is None:
            fetched = self._call(f"fetching schema id {schema_id}", lambda: self._client.get_schema(schema_id))
            registered = _registered_from(schema_id, fetched)
            self._by_id[schema_id] = registered
        return registered

    def _call(self, what: str, request: Any) -> Any:
        try:
            return request()
        except SchemaRegistryError as exc:
            if exc.error_code == SCHEMA_NOT_FOUND:
                raise KeyError(exc.error_message) from None
            hint = _HINTS.get(exc.http_status_code, "check the registry's logs")
            raise RegistryError(f"schema registry {self.url}: {what} failed: {exc}; {hint}") from exc
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"schema registry {self.url}: {what} failed: {type(exc).__name__}: {exc}; check that "
                "O2O_SCHEMA_REGISTRY_URL points to a running Confluent-compatible registry reachable from here"
            ) from exc


_HINTS = {
    401: "check the user:password in O2O_SCHEMA_REGISTRY_URL",
    403: "check that the registry user may read and register these subjects",
    409: "the packaged schema is incompatible with the subject's history; check its compatibility level",
    422: "the registry rejected the schema as invalid; check that it supports AVRO",
}


def _registered_from(schema_id: int, fetched: Schema) -> RegisteredSchema:
    """A fetched writer schema as the codec needs it: subject = the record's full name."""
    try:
        schema = json.loads(fetched.schema_str) if fetched.schema_type in (None, "AVRO") else None
    except (TypeError, ValueError):
        schema = None
    if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
        # Not an Avro record (PROTOBUF, JSON, a primitive): the codec rejects the subject as 'malformed'.
        return RegisteredSchema(schema_id, f"<{fetched.schema_type or 'AVRO'} schema, not an Avro record>", 0, {})
    name, namespace = schema["name"], schema.get("namespace")
    subject = name if "." in name or not namespace else f"{namespace}.{name}"
    # Foreign writers' schemas may lack o2o_version; the codec reads only id, subject and schema.
    return RegisteredSchema(schema_id, subject, int(schema.get("o2o_version", 0)), schema)


def split_credentials(url: str) -> tuple[str, str | None]:
    """(URL without user:password@, 'user:password' or None)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
