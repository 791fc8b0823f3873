"""Inserts over ClickHouse's HTTP interface, in `JSONEachRow`: for the `events` table.

The native protocol (clickhouse-driver) makes the client serialise every column value in Python;
with JSONEachRow the client writes one orjson line per row and the server parses it. For `events`
(37 columns) that took the sink's cost per event from about 22 us to about 10 us (bench/: the
sink's share of `o2o bench`). Everything else still goes through clickhouse-driver.

One `ClickHouseHTTP` per thread (it holds a keep-alive connection); any failure closes it. A
connection the server closed while idle is replaced at once; other failures are the caller's to
retry.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.parse

from pipeline.config import Settings

TIMEOUT_S = 60


class ClickHouseHTTPError(Exception):
    """ClickHouse answered an HTTP request with an error; the message is the server's first line."""


class ClickHouseHTTP:
    def __init__(self, settings: Settings, timeout_s: float = TIMEOUT_S) -> None:
        self.settings, self.timeout_s = settings, timeout_s
        self.connection: http.client.HTTPConnection | None = None
        credentials = f"{settings.clickhouse_user}:{settings.clickhouse_password.get_secret_value()}"
        self.headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
                        "Content-Type": "application/x-ndjson"}

    def insert_json_each_row(self, table: str, columns: tuple[str, ...], body: bytes) -> None:
        """INSERT INTO `table` (`columns`) the rows of `body` (one JSON object per line). Fields not
        among the columns are ignored; columns missing from a row take their defaults."""
        query = urllib.parse.urlencode({
            "database": self.settings.clickhouse_database,
            "input_format_skip_unknown_fields": 1,
            "query": f"INSERT INTO {table} ({', '.join(columns)}) FORMAT JSONEachRow",
        })
        self.request("/?" + query, body)

    def request(self, path: str, body: bytes) -> bytes:
        reused = self.connection is not None
        try:
            return self._send(path, body)
        except ConnectionError:
            if not reused:
                raise
            # ClickHouse closes a keep-alive connection idle for keep_alive_timeout (3 s by default):
            # an idle sink finds it gone on its next insert. Once more, on a fresh connection.
            return self._send(path, body)

    def _send(self, path: str, body: bytes) -> bytes:
        try:
            connection = self.connection or self.connect()
            connection.request("POST", path, body, self.headers)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.status != 200:
            self.close()
            first_line = (answer.decode(errors="replace").splitlines() or [""])[0][:300]
            raise ClickHouseHTTPError(f"HTTP {response.status}: {first_line}")
        return answer

    def connect(self) -> http.client.HTTPConnection:
        s = self.settings
        if s.clickhouse_secure:
            context = ssl.create_default_context(cafile=str(s.clickhouse_ca_certs) if s.clickhouse_ca_certs else None)
            self.connection = http.client.HTTPSConnection(s.clickhouse_host, s.clickhouse_http_port,
                                                          timeout=self.timeout_s, context=context)
        else:
            self.connection = http.client.HTTPConnection(s.clickhouse_host, s.clickhouse_http_port,
                                                         timeout=self.timeout_s)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
