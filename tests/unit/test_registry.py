"""ConfluentRegistry against an in-test HTTP server speaking the subset of Confluent's REST API it uses.

No Confluent-compatible registry can run here, so `FakeRegistryServer` implements exactly what
confluent-kafka's SchemaRegistryClient calls: POST /subjects/{subject}/versions and GET /schemas/ids/{id}.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from event_strategies import NOW_MS
from pipeline.config import Settings
from pipeline.privacy import IdentifierHasher
from pipeline.registry import ConfluentRegistry, RegistryError, split_credentials
from pipeline.serde import registry_from_settings
from pipeline.serde import DecodeError, EmbeddedRegistry, EventCodec, unframe
from pipeline.validation import validate

SECRET = "s3cr%40t"  # percent-encoded in the URL; the server expects it decoded


class FakeRegistryServer(ThreadingHTTPServer):
    def __init__(self, required_auth: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.required_auth = required_auth
        self.ids_by_schema: dict[str, int] = {}
        self.schemas_by_id: dict[int, str] = {}
        self.subjects_by_id: dict[int, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, schema_text: str, subject: str) -> int:
        schema_id = self.ids_by_schema.setdefault(schema_text, len(self.ids_by_schema) + 1)
        self.schemas_by_id[schema_id] = schema_text
        self.subjects_by_id[schema_id] = subject
        return schema_id


class _Handler(BaseHTTPRequestHandler):
    server: FakeRegistryServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0].split("/")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self._authorised():
            return
        if len(path) == 4 and path[1] == "subjects" and path[3] == "versions" and body.get("schemaType") == "AVRO":
            self._reply(200, {"id": self.server.add(body["schema"], path[2])})
        else:
            self._reply(422, {"error_code": 42201, "message": f"unexpected request {self.path}"})

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0].split("/")
        if not self._authorised():
            return
        if len(path) == 4 and path[1:3] == ["schemas", "ids"] and int(path[3]) in self.server.schemas_by_id:
            self._reply(200, {"schema": self.server.schemas_by_id[int(path[3])]})
        else:
            self._reply(404, {"error_code": 40403, "message": f"Schema {path[-1]} not found"})

    def _authorised(self) -> bool:
        expected = self.server.required_auth
        if expected is None or self.headers.get("Authorization") == "Basic " + base64.b64encode(
            expected.encode()
        ).decode():
            return True
        self._reply(401, {"error_code": 40101, "message": "Unauthorized"})
        return False

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def _serve(server: FakeRegistryServer) -> Iterator[FakeRegistryServer]:
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def registry_server() -> Iterator[FakeRegistryServer]:
    yield from _serve(FakeRegistryServer())


@pytest.fixture
def secured_registry_server() -> Iterator[FakeRegistryServer]:
    yield from _serve(FakeRegistryServer(required_auth="alice:s3cr@t"))


def _closed_port_url(userinfo: str = "") -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://{userinfo}127.0.0.1:{port}"


HASHER = IdentifierHasher(b"test-secret")


def _event(event_type: str, number: int) -> dict:
    raw = {"event_type": event_type, "event_id": f"{event_type}-{number}", "occurred_at": NOW_MS,
           "channel": "app", "member_id": f"m-{number}", "store_id": "s-1"}
    raw.update({
        "browse": {"page": f"/p/{number}"},
        "purchase": {"order_id": f"o-{number}", "status": "paid", "amount_cents": 2400, "currency": "CNY",
                     "items": [{"sku": "a", "quantity": 2, "price_cents": 1200}]},
    }[event_type])
    event = validate(raw, NOW_MS)
    assert isinstance(event, dict), event
    HASHER.hash_identifiers(event)
    return event


# --- round trip through the registry --------------------------------------------------------------

def test_events_and_batches_round_trip_with_the_registrys_ids(registry_server):
    writer = EventCodec(ConfluentRegistry(registry_server.url))
    browse = _event("browse", 1)
    purchases = [_event("purchase", 1), _event("purchase", 2)]
    single, batch = writer.encode(browse), writer.encode_batch(purchases)

    single_id, batch_id = unframe(single)[0], unframe(batch)[0]
    assert {single_id, batch_id} <= {1, 2}  # the server's ids, not the embedded 101 / 351
    assert registry_server.subjects_by_id == {single_id: "o2o.Browse", batch_id: "o2o.PurchaseBatch"}

    reader = EventCodec(ConfluentRegistry(registry_server.url))
    assert reader.decode(single) == [browse]
    assert reader.decode(batch) == purchases


def test_registered_schema_is_the_packaged_one_and_registering_again_keeps_its_id(registry_server):
    first = ConfluentRegistry(registry_server.url).latest("o2o.ShareBatch")
    again = ConfluentRegistry(registry_server.url).latest("o2o.ShareBatch")
    packaged = EmbeddedRegistry().latest("o2o.ShareBatch")
    assert first == again
    assert (first.subject, first.version, first.schema) == (packaged.subject, packaged.version, packaged.schema)
    assert json.loads(registry_server.schemas_by_id[first.schema_id]) == packaged.schema


def test_by_id_maps_a_schema_registered_elsewhere_to_its_record_subject(registry_server):
    packaged = EmbeddedRegistry().latest("o2o.WifiCheckin")
    schema_id = registry_server.add(json.dumps(packaged.schema), "some-topic-value")
    fetched = ConfluentRegistry(registry_server.url).by_id(schema_id)
    assert (fetched.schema_id, fetched.subject, fetched.version, fetched.schema) == (
        schema_id, "o2o.WifiCheckin", packaged.version, packaged.schema)


def test_latest_of_a_subject_without_a_packaged_schema_is_a_key_error(registry_server):
    with pytest.raises(KeyError):
        ConfluentRegistry(registry_server.url).latest("o2o.Nothing")


# --- decode errors --------------------------------------------------------------------------------

def test_unknown_schema_id_is_malformed(registry_server):
    codec = EventCodec(ConfluentRegistry(registry_server.url))
    with pytest.raises(DecodeError) as caught:
        codec.decode(b"\x00\x00\x00\x00\x63" + b"\x02")
    assert caught.value.reason == "malformed" and "99" in str(caught.value)


@pytest.mark.parametrize("schema_text", ['"string"', '{"type": "record", "name": "Other", "fields": []}'])
def test_a_schema_that_is_not_one_of_ours_is_malformed(registry_server, schema_text):
    schema_id = registry_server.add(schema_text, "foreign")
    codec = EventCodec(ConfluentRegistry(registry_server.url))
    with pytest.raises(DecodeError) as caught:
        codec.decode(bytes((0,)) + schema_id.to_bytes(4, "big") + b"\x00")
    assert caught.value.reason == "malformed"


# --- registry failures ----------------------------------------------------------------------------

def test_unreachable_registry_is_a_clear_error_naming_the_url():
    url = _closed_port_url()
    codec = EventCodec(ConfluentRegistry(url))
    with pytest.raises(RegistryError, match="reachable") as caught:
        codec.encode(_event("browse", 1))
    assert url in str(caught.value) and "o2o.Browse" in str(caught.value)


def test_credentials_in_the_url_are_sent_as_basic_auth(secured_registry_server):
    host = secured_registry_server.url.removeprefix("http://")
    codec = EventCodec(ConfluentRegistry(f"http://alice:{SECRET}@{host}"))
    assert codec.decode(codec.encode(_event("browse", 1)))[0]["event_id"] == "browse-1"


def test_explicit_auth_is_sent_as_basic_auth(secured_registry_server):
    registry = ConfluentRegistry(secured_registry_server.url, auth="alice:s3cr@t")
    assert registry.latest("o2o.Browse").schema_id == 1


def test_wrong_credentials_say_what_to_check_without_showing_them(secured_registry_server):
    host = secured_registry_server.url.removeprefix("http://")
    registry = ConfluentRegistry(f"http://alice:wrong-pass@{host}")
    with pytest.raises(RegistryError, match="check the user:password") as caught:
        registry.latest("o2o.Browse")
    assert secured_registry_server.url in str(caught.value) and "wrong-pass" not in str(caught.value)


def test_credentials_never_appear_in_connection_errors():
    url = _closed_port_url(f"alice:{SECRET}@")
    with pytest.raises(RegistryError) as caught:
        ConfluentRegistry(url).by_id(1)
    message = str(caught.value)
    assert "s3cr" not in message and "alice" not in message
    assert url.replace(f"alice:{SECRET}@", "") in message


def test_split_credentials_decodes_userinfo_and_keeps_the_rest():
    assert split_credentials("https://u:p%40ss@reg.example:8081/base") == (
        "https://reg.example:8081/base", "u:p@ss")
    assert split_credentials("http://reg:8081") == ("http://reg:8081", None)


def test_registry_from_settings_picks_the_registry_by_url():
    assert isinstance(registry_from_settings(Settings(schema_registry_url=None)), EmbeddedRegistry)
    chosen = registry_from_settings(Settings(schema_registry_url="http://reg.example:8081"))
    assert isinstance(chosen, ConfluentRegistry) and chosen.url == "http://reg.example:8081"
