"""Monitoring on the real daemon: the Prometheus scrape, request ids into the function and
back, the access log, `hearth top`, the history behind the charts."""

from __future__ import annotations

import http.server
import json
import threading

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Daemon, wait_for

ECHO = """
import os

def handle(request):
    if request.query_params.get("fail"):
        raise RuntimeError("asked to fail")
    if request.query_params.get("spin"):
        sum(range(3_000_000))  # CPU time the scrape must see (more than a clock tick)
    return {
        "request_id": request.headers.get("x-request-id"),
        "traceparent": request.headers.get("traceparent"),
    }
"""


def scrape(daemon, token=None) -> dict:
    with daemon.api_client(token) as api:
        response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def value(families, name, suffix="", **labels) -> float:
    """The sample of family `name` whose labels include `labels` (sum if several)."""
    found = [
        s.value
        for s in families[name].samples
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert found, (name, suffix, labels, families[name].samples[:5])
    return sum(found)


def test_metrics_count_what_was_sent(daemon, fn_dir):
    daemon.deploy(fn_dir("watched", {"main.py": ECHO}))
    for _ in range(19):
        assert daemon.get("/fn/watched/").status_code == 200
    assert daemon.get("/fn/watched/?spin=1").status_code == 200
    for _ in range(3):
        assert daemon.get("/fn/watched/?fail=1").status_code == 500
    assert daemon.get("/fn/nobody-here/").status_code == 404
    families = scrape(daemon)
    labels = {"function": "watched", "version": "1"}
    assert value(families, "hearth_requests", "_total", code="2xx", **labels) == 20
    assert value(families, "hearth_requests", "_total", code="5xx", **labels) == 3
    assert value(families, "hearth_request_duration_seconds", "_count", **labels) == 23
    assert value(families, "hearth_request_duration_seconds", "_bucket", le="+Inf", **labels) == 23
    assert value(families, "hearth_request_duration_seconds", "_sum", **labels) > 0
    assert value(families, "hearth_request_queue_wait_seconds", "_count", **labels) == 23
    assert value(families, "hearth_response_bytes", "_total", **labels) > 23 * 50
    assert value(families, "hearth_unrouted_requests", "_total") >= 1
    assert value(families, "hearth_instances", state="ready", **labels) == 1
    assert value(families, "hearth_requests_in_flight", **labels) == 0
    assert value(families, "hearth_instance_starts", "_total", function="watched") == 1
    assert value(families, "hearth_instance_start_seconds", "_count", function="watched") == 1
    assert value(families, "hearth_deploys", "_total", function="watched", result="ok") == 1
    assert value(families, "hearth_instance_resident_memory_bytes", **labels) > 1_000_000
    assert value(families, "hearth_instance_cpu_seconds", "_total", **labels) > 0
    assert value(families, "process_resident_memory_bytes") > 0  # the daemon's own
    assert families["hearth_request_duration_seconds"].type == "histogram"
    assert families["hearth_requests"].type == "counter"


def test_cold_starts_exits_and_failed_deploys_are_counted(daemon, fn_dir):
    folder = fn_dir(
        "sleeper", {"main.py": ECHO, "hearth.toml": '[scale]\nmin = 0\nidle = "500ms"\n'}
    )
    daemon.deploy(folder)
    wait_for(lambda: daemon.status("sleeper")["instances"] == [], what="zero instances")
    assert daemon.get("/fn/sleeper/").status_code == 200  # from zero: a cold start
    wait_for(lambda: daemon.status("sleeper")["instances"] == [], what="back to zero")
    (folder / "main.py").write_text("import nonexistent_module\n")
    assert daemon.cli("deploy", str(folder)).returncode != 0
    families = scrape(daemon)
    labels = {"function": "sleeper"}
    assert value(families, "hearth_instance_starts", "_total", cold="true", **labels) == 1
    assert value(families, "hearth_instance_exits", "_total", reason="stopped", **labels) >= 1
    assert value(families, "hearth_deploys", "_total", result="failed", **labels) == 1
    assert value(families, "hearth_instance_start_failures", "_total", **labels) >= 1


def test_request_ids_reach_the_function_and_come_back(daemon, fn_dir):
    daemon.deploy(fn_dir("traced", {"main.py": ECHO}))
    parent = "00f067aa0ba902b7"
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    sent = {"x-request-id": "order-42", "traceparent": f"00-{trace}-{parent}-01"}
    response = daemon.get("/fn/traced/", headers=sent)
    seen = response.json()
    assert seen["request_id"] == response.headers["x-request-id"] == "order-42"
    assert seen["traceparent"] == response.headers["traceparent"]
    version, got_trace, span, flags = seen["traceparent"].split("-")
    assert (version, got_trace, flags) == ("00", trace, "01") and span != parent
    fresh = daemon.get("/fn/traced/")
    assert fresh.json()["request_id"] == fresh.headers["x-request-id"]
    assert fresh.headers["traceparent"].split("-")[1] == fresh.headers["x-request-id"]
    missing = daemon.get("/fn/nobody/", headers={"x-request-id": "lost-7"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "lost-7"


def test_the_access_log_has_a_line_per_request(daemon, fn_dir):
    daemon.deploy(fn_dir("logged", {"main.py": ECHO}))
    daemon.get("/fn/logged/a?b=1", headers={"x-request-id": "first"})
    daemon.request("POST", "/fn/logged/", content=b"12345", headers={"x-request-id": "second"})

    def lines():
        result = daemon.cli("logs", "logged", "--access", "--json", check=True)
        return [json.loads(line) for line in result.stdout.splitlines() if line]

    rows = wait_for(lambda: (r := lines()) and len(r) >= 2 and r, what="access lines")
    first, second = rows[-2:]
    assert first["request_id"] == "first" and first["path"] == "/fn/logged/a?b=1"
    assert (first["method"], first["status"], first["version"]) == ("GET", 200, 1)
    assert first["instance"].startswith("logged@1#") and first["client"] == "127.0.0.1"
    assert first["bytes_out"] > 0 and first["duration_ms"] > 0 and first["queue_ms"] >= 0
    assert first["traceparent"].startswith("00-")
    assert (second["method"], second["bytes_in"], second["request_id"]) == ("POST", 5, "second")
    human = daemon.cli("logs", "logged", "--access", check=True).stdout
    assert "GET /fn/logged/a?b=1 200" in human and "id=first" in human


def test_top_and_the_history_show_traffic(daemon, fn_dir):
    daemon.deploy(fn_dir("busy", {"main.py": ECHO}))
    with httpx.Client() as client:
        for _ in range(50):
            client.get(daemon.gateway + "/fn/busy/")

    def busy_row():
        snapshot = json.loads(daemon.cli("top", "--once", "--json", check=True).stdout)
        assert snapshot["window_s"] == 5
        rows = [r for r in snapshot["versions"] if r["function"] == "busy"]
        return rows[0] if rows and rows[0]["rps"] > 0 else None

    row = wait_for(busy_row, what="busy in hearth top")
    assert row["version"] == 1 and row["instances"] == 1 and row["p50_ms"] > 0
    assert row["memory_bytes"] > 1_000_000
    table = daemon.cli("top", "--once", check=True).stdout
    assert "busy" in table and "REQ/S" in table
    with daemon.api_client() as api:
        points = api.get("/v1/functions/busy/metrics", params={"seconds": 60}).json()["points"]
        assert sum(p["rps"] * p["seconds"] for p in points) == 50
        assert max(p["instances"] for p in points) == 1
        assert api.get("/v1/functions/nobody/metrics").status_code == 404


def test_metrics_need_a_token_and_respect_scopes(daemon, fn_dir):
    daemon.deploy(fn_dir("mine", {"main.py": ECHO}))
    assert httpx.get(daemon.api + "/metrics").status_code == 401
    with daemon.api_client() as api:
        read = api.post("/v1/tokens", json={"name": "grafana", "scope": "read"}).json()["token"]
        own = api.post("/v1/tokens", json={"name": "ci", "scope": "deploy:mine"}).json()["token"]
    assert "hearth_requests" in scrape(daemon, read)
    with daemon.api_client(own) as api:
        assert api.get("/metrics").status_code == 403  # every function's numbers
        shown = {r["function"] for r in api.get("/v1/metrics").json()["versions"]}
        assert shown == {"mine"}
        assert api.get("/v1/functions/mine/metrics").status_code == 200
        assert api.get("/v1/functions/watched/metrics").status_code == 403


class Collector:
    """A stand-in OpenTelemetry collector: keeps what is POSTed to /v1/traces."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                collector.bodies.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        found = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    found.extend(scope.spans)
        return found


def test_spans_go_to_an_otlp_collector(tmp_path, fn_dir):
    collector = Collector()
    daemon = Daemon(tmp_path / "data", "--otlp", collector.url).start()
    try:
        daemon.deploy(fn_dir("spanned", {"main.py": ECHO}))
        parent = "00f067aa0ba902b7"
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        continued = daemon.get("/fn/spanned/", headers={"traceparent": f"00-{trace}-{parent}-01"})
        started = daemon.get("/fn/spanned/?fail=1")
        skipped = daemon.get("/fn/spanned/", headers={"traceparent": f"00-{trace}-{parent}-00"})
        assert started.headers["traceparent"].endswith("-01")  # exporting: sampled
    finally:
        assert daemon.stop() == 0  # the last spans are sent on the way out
        collector.server.shutdown()
        collector.server.server_close()
    spans = {span.span_id.hex(): span for span in collector.spans()}
    first = spans[continued.headers["traceparent"].split("-")[2]]
    assert first.trace_id.hex() == trace and first.parent_span_id.hex() == parent
    assert first.name == "GET spanned" and first.end_time_unix_nano > first.start_time_unix_nano
    attributes = {a.key: a.value for a in first.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["hearth.instance"].string_value.startswith("spanned@1#")
    assert "hearth.queue_wait_ms" in attributes and "hearth.upstream_ms" in attributes
    second = spans[started.headers["traceparent"].split("-")[2]]
    assert second.trace_id.hex() == started.headers["x-request-id"]
    assert not second.parent_span_id  # the trace started at the gateway
    assert second.status.code == 2  # ERROR: the function answered 500
    assert skipped.headers["traceparent"].split("-")[2] not in spans  # not sampled: not sent


def test_the_charts_survive_a_restart(fresh_daemon, fn_dir):
    daemon = fresh_daemon.start()
    daemon.deploy(fn_dir("kept", {"main.py": ECHO}))
    for _ in range(12):
        assert daemon.get("/fn/kept/").status_code == 200
    assert daemon.stop() == 0
    daemon.start()
    with daemon.api_client() as api:
        points = api.get("/v1/functions/kept/metrics", params={"seconds": 900}).json()["points"]
    assert sum(round(p["rps"] * p["seconds"]) for p in points) == 12
    assert any(p["seconds"] == 60 for p in points)  # the minute kept at shutdown
