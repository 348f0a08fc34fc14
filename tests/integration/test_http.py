"""Plain HTTP: /healthz, /metrics, /api/publish, keep-alive, pipelining,
error statuses and the header timeout (slowloris)."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time

import pytest

import wsraw
from helpers import REPO_ROOT, connect, metric_names_from_text, recv_json, run, subscribe

DOCUMENTED_METRICS = [
    "wsbroker_connections",
    "wsbroker_websocket_connections",
    "wsbroker_subscriptions",
    "wsbroker_subscription_patterns",
    "wsbroker_topics",
    "wsbroker_outbound_queued_bytes",
    "wsbroker_uptime_seconds",
    "wsbroker_connections_accepted_total",
    "wsbroker_connections_rejected_total",
    "wsbroker_websocket_upgrades_total",
    "wsbroker_handshake_failures_total",
    "wsbroker_http_requests_total",
    "wsbroker_messages_published_total",
    "wsbroker_http_publishes_total",
    "wsbroker_messages_delivered_total",
    "wsbroker_messages_received_total",
    "wsbroker_bytes_in_total",
    "wsbroker_bytes_out_total",
    "wsbroker_slow_consumer_closes_total",
    "wsbroker_header_timeouts_total",
    "wsbroker_idle_timeouts_total",
    "wsbroker_write_calls_total",
    "wsbroker_close_frames_total",
    "wsbroker_protocol_errors_total",
    "wsbroker_write_batch_frames_bucket",
    "wsbroker_write_batch_frames_sum",
    "wsbroker_write_batch_frames_count",
]


def req(method, path, headers=None, body=b"", keep_alive=True):
    h = {"Host": "x"}
    if body:
        h["Content-Length"] = str(len(body))
    if not keep_alive:
        h["Connection"] = "close"
    if headers:
        h.update(headers)
    return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode() + body


# ---- /healthz and /metrics --------------------------------------------------------------------


def test_healthz_is_json_status_ok(broker):
    r = broker.get("/healthz")
    assert r.status == 200
    assert r.header("Content-Type").startswith("application/json")
    body = r.json()
    assert body["status"] == "ok"
    assert isinstance(body["node_id"], str) and body["node_id"]
    assert int(r.header("Content-Length")) == len(r.body)


def test_healthz_numbers_are_rounded(broker):
    """Regression: /healthz printed "uptime_s":46.567999999999998 (a double
    of milliseconds / 1000 at full precision). Each number has at most 3
    decimals; a few samples, since a few uptimes are exact in binary."""
    for _ in range(8):
        body = broker.get("/healthz").body.decode()
        reals = re.findall(r"-?\d+\.\d+(?:[eE][-+]?\d+)?", body)
        assert re.search(r'"uptime_s":\d+(\.\d+)?[,}]', body), body
        for text in reals:
            assert re.fullmatch(r"-?\d+\.\d{1,3}", text), f"{text} in {body}"
            assert round(float(text), 3) == float(text)
        assert json.loads(body)["uptime_s"] >= 0


def test_healthz_ignores_query_string(broker):
    assert broker.get("/healthz?verbose=1").json()["status"] == "ok"


def test_head_healthz_has_no_body_and_keeps_connection_usable(broker):
    c = broker.conn()
    c.send(req("HEAD", "/healthz"))
    r = wsraw.read_response(c, head_only=True)
    assert r.status == 200 and int(r.header("Content-Length")) > 0
    # If the broker had sent a body, it would be read here as the next status line.
    c.send(req("GET", "/healthz"))
    r2 = wsraw.read_response(c)
    assert r2.status == 200 and r2.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_wrong_method_on_get_endpoints_is_405(broker, path):
    r = broker.post(path, "{}")
    assert r.status == 405
    assert "GET" in r.header("Allow")


METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def check_exposition(text: str) -> dict:
    """Checks `text` against the Prometheus text exposition format (0.0.4):
    one HELP and one TYPE per family before its samples, samples only of the
    family being described, valid names, labels and values, no duplicate
    series, histograms with sorted cumulative buckets ending in +Inf equal to
    _count and a _sum. Returns {family: type}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, seen, family = {}, set(), set(), None
    hist = {}
    for line in text.split("\n")[:-1]:
        assert line, "blank line in the exposition"
        if line.startswith("#"):
            kind, name, rest = (line.split(" ", 3) + ["", ""])[1:4]
            assert kind in ("HELP", "TYPE"), line
            assert METRIC_NAME.fullmatch(name), line
            if kind == "HELP":
                assert name not in helps, f"second HELP for {name}"
                assert rest, f"empty HELP for {name}"
                helps.add(name)
            else:
                assert name not in types, f"second TYPE for {name}"
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
                types[name] = rest
            family = name
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            float(value)  # also accepts +Inf, -Inf, NaN
        except ValueError:
            raise AssertionError(f"not a number: {line!r}") from None
        assert family is not None and family in types and family in helps, f"{name} before its HELP/TYPE"
        suffixes = ("_bucket", "_sum", "_count") if types[family] == "histogram" else ("",)
        assert any(name == family + sfx for sfx in suffixes), f"{name} inside family {family}"
        pairs = LABEL.findall(labels)
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"repeated label in {line!r}"
        series = (name, tuple(sorted(pairs)))
        assert series not in seen, f"duplicate series {line!r}"
        seen.add(series)
        if types[family] == "histogram":
            h = hist.setdefault(family, {"buckets": []})
            if name.endswith("_bucket"):
                le = dict(pairs).get("le")
                assert le is not None, f"bucket without le: {line!r}"
                h["buckets"].append((float(le), float(value)))
            else:
                h[name[len(family) + 1:]] = float(value)
    for fam, h in hist.items():
        les = [le for le, _ in h["buckets"]]
        counts = [c for _, c in h["buckets"]]
        assert les and les[-1] == float("inf"), f"{fam}: no +Inf bucket"
        assert les == sorted(les) and len(set(les)) == len(les), f"{fam}: buckets not in increasing le order"
        assert counts == sorted(counts), f"{fam}: buckets are not cumulative: {counts}"
        assert "count" in h and "sum" in h, f"{fam}: _count or _sum missing"
        assert counts[-1] == h["count"], f"{fam}: +Inf bucket {counts[-1]} != _count {h['count']}"
    assert set(types) == helps, f"families without HELP or TYPE: {set(types) ^ helps}"
    return types


def test_metrics_is_prometheus_text_with_documented_names(broker):
    # Some traffic first, so the counters, labelled series and the batch
    # histogram hold more than zeros.
    async def go():
        sub = await connect(broker.ws_url)
        await subscribe(sub, "m.x", 1)
        for i in range(5):
            assert broker.post("/api/publish", {"topic": "m.x", "data": i}).status == 200
        for _ in range(5):
            await recv_json(sub)
        await sub.send('{"type":"subscribe","topic":"bad..topic","id":2}')
        assert (await recv_json(sub))["code"] == "bad_topic"
        await sub.close()

    run(go())
    r = broker.get("/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    text = r.body.decode()
    types = check_exposition(text)
    names = metric_names_from_text(text)
    missing = [n for n in DOCUMENTED_METRICS if n not in names]
    assert not missing, f"missing metrics: {missing}"
    # The families issue 3 names, with their types.
    for fam, typ in [("wsbroker_connections", "gauge"), ("wsbroker_subscriptions", "gauge"),
                     ("wsbroker_topics", "gauge"), ("wsbroker_messages_received_total", "counter"),
                     ("wsbroker_messages_published_total", "counter"),
                     ("wsbroker_messages_delivered_total", "counter"), ("wsbroker_bytes_in_total", "counter"),
                     ("wsbroker_bytes_out_total", "counter"), ("wsbroker_slow_consumer_closes_total", "counter"),
                     ("wsbroker_protocol_errors_total", "counter"), ("wsbroker_write_batch_frames", "histogram")]:
        assert types.get(fam) == typ, f"{fam}: type {types.get(fam)}, expected {typ}"
    m = broker.metrics()
    assert m['wsbroker_protocol_errors_total{code="bad_topic"}'] >= 1
    assert m["wsbroker_write_batch_frames_count"] >= 1 and m["wsbroker_write_batch_frames_sum"] >= 5


def test_exposition_checker_rejects_malformed_text():
    """The checker above is what makes the format test able to fail."""
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
    check_exposition(good)
    hist = ("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\n"
            "h_sum 4\nh_count 3\n")
    check_exposition(hist)
    bad = [
        good.rstrip("\n"),                                        # no final newline
        "# TYPE a_total counter\na_total 1\n",                    # no HELP
        good + "a_total 2\n",                                      # duplicate series
        good + "b 1\n",                                            # sample outside its family
        good.replace("a_total 1", "a_total one"),                   # bad value
        good.replace("a_total 1", 'a_total{x="1",x="2"} 1'),        # repeated label
        good.replace("a_total 1", "a_total{x=1} 1"),                # unquoted label value
        hist.replace('h_bucket{le="1"} 2', 'h_bucket{le="1"} 4'),   # not cumulative
        hist.replace("h_count 3", "h_count 5"),                     # +Inf != _count
        hist.replace('h_bucket{le="+Inf"} 3\n', ""),               # no +Inf
        hist.replace("h_sum 4\n", ""),                              # no _sum
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            check_exposition(text)


def test_metrics_count_what_happened(broker):
    before = broker.metrics()

    async def go():
        sub = await connect(broker.ws_url)
        await subscribe(sub, "count.me", 1)
        r = broker.post("/api/publish", {"topic": "count.me", "data": 1})
        assert r.status == 200 and r.json() == {"seq": 1}, r
        await recv_json(sub)
        m = broker.metrics()
        assert m["wsbroker_websocket_connections"] == 1
        assert m["wsbroker_subscriptions"] == 1
        assert m["wsbroker_messages_published_total"] == before["wsbroker_messages_published_total"] + 1
        assert m["wsbroker_http_publishes_total"] == before["wsbroker_http_publishes_total"] + 1
        assert m["wsbroker_messages_delivered_total"] == before["wsbroker_messages_delivered_total"] + 1
        assert m["wsbroker_websocket_upgrades_total"] == before["wsbroker_websocket_upgrades_total"] + 1
        await sub.close()

    run(go())


# ---- keep-alive and pipelining ------------------------------------------------------------------


def test_keep_alive_two_requests_on_one_connection(broker):
    c = broker.conn()
    c.send(req("GET", "/healthz"))
    r1 = wsraw.read_response(c)
    assert r1.status == 200 and (r1.header("Connection") or "").lower() == "keep-alive"
    c.send(req("GET", "/metrics"))
    r2 = wsraw.read_response(c)
    assert r2.status == 200 and b"wsbroker_connections" in r2.body
    assert broker.metric("wsbroker_connections_accepted_total") >= 1


def test_pipelined_requests_answered_in_order(broker):
    c = broker.conn()
    body = json.dumps({"topic": "pipe", "data": 1}).encode()
    c.send(req("GET", "/healthz") + req("POST", "/api/publish", {"Content-Type": "application/json"}, body)
           + req("GET", "/metrics") + req("POST", "/api/publish", {"Content-Type": "application/json"}, body)
           + req("GET", "/healthz", keep_alive=False))
    r1 = wsraw.read_response(c)
    r2 = wsraw.read_response(c)
    r3 = wsraw.read_response(c)
    r4 = wsraw.read_response(c)
    r5 = wsraw.read_response(c)
    assert [r1.status, r2.status, r3.status, r4.status, r5.status] == [200] * 5
    assert r1.json()["status"] == "ok"
    assert r2.json()["seq"] == 1 and r4.json()["seq"] == 2
    assert b"wsbroker_http_requests_total" in r3.body
    assert r5.json()["status"] == "ok"
    assert (r5.header("Connection") or "").lower() == "close"
    assert c.read_to_eof() == b""


def test_head_metrics_has_no_body(broker):
    c = broker.conn()
    c.send(req("HEAD", "/metrics") + req("GET", "/healthz"))
    r = wsraw.read_response(c, head_only=True)
    assert r.status == 200
    r2 = wsraw.read_response(c)
    assert r2.status == 200 and r2.json()["status"] == "ok", "HEAD response carried a body"


def test_pipelined_request_after_connection_close_is_not_answered(broker):
    c = broker.conn()
    c.send(req("GET", "/healthz", keep_alive=False) + req("GET", "/metrics"))
    r = wsraw.read_response(c)
    assert r.status == 200 and r.header("Connection").lower() == "close"
    # Nothing more, and a clean FIN (no RST although we sent bytes it never answered).
    assert c.read_to_eof() == b""


def test_upgrade_after_keep_alive_request_on_same_connection(broker):
    c = broker.conn()
    c.send(req("GET", "/healthz"))
    assert wsraw.read_response(c).status == 200
    key = wsraw.new_key()
    c.send(wsraw.upgrade_request(key=key))
    r = wsraw.read_response(c)
    assert r.status == 101 and r.header("Sec-WebSocket-Accept") == wsraw.accept_key(key)
    assert c.recv_json()["type"] == "welcome"
    c.send_json({"type": "ping", "id": 1})
    assert c.recv_json() == {"type": "pong", "id": 1}


def test_pipelined_requests_split_at_odd_boundaries(broker):
    c = broker.conn()
    data = req("GET", "/healthz") * 3
    for i in range(0, len(data), 5):
        c.send(data[i : i + 5])
    for _ in range(3):
        assert wsraw.read_response(c).status == 200


def test_connection_close_request_gets_close(broker):
    c = broker.conn()
    c.send(req("GET", "/healthz", keep_alive=False))
    r = wsraw.read_response(c)
    assert r.status == 200 and r.header("Connection").lower() == "close"
    assert c.read_to_eof() == b""


def test_http10_without_keep_alive_is_closed_after_response(broker):
    c = broker.conn()
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    r = wsraw.read_response(c)
    assert r.status == 200
    assert c.read_to_eof() == b""


def test_garbage_request_is_400_and_closed(broker):
    c = broker.conn()
    c.send(b"\x16\x03\x01\x02\x00 this is TLS, not HTTP\r\n\r\n")
    r = wsraw.read_response(c)
    assert r.status == 400
    assert c.wait_closed() == "eof"
    broker.assert_healthy()


def test_request_header_over_max_header_size_is_431(broker):
    r = wsraw.http_request(broker.host, broker.port, "GET", "/healthz", headers={"X-Big": "b" * 10000})
    assert r.status == 431


@pytest.mark.parametrize("headers", [
    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    "Content-Length: 5\r\nContent-Length: 6\r\n",
    "Content-Length: -1\r\n",
    "Content-Length: 5x\r\n",
    "Transfer-Encoding: gzip, chunked, identity\r\n",
])
def test_ambiguous_message_framing_is_400(broker, headers):
    """Request-smuggling hygiene: framing a proxy could read differently is refused."""
    c = broker.conn()
    c.send(("POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + headers
            + "\r\n0\r\n\r\n").encode())
    r = wsraw.read_response(c)
    assert r.status == 400, r
    assert c.wait_closed() == "eof"


def test_unsupported_http_version_is_rejected(broker):
    c = broker.conn()
    c.send(b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n")
    r = wsraw.read_response(c)
    assert r.status in (400, 505)


# ---- /api/publish -------------------------------------------------------------------------------


def test_http_publish_reaches_websocket_subscriber(broker):
    async def go():
        sub = await connect(broker.ws_url)
        await subscribe(sub, "orders.*", 1)
        r = broker.post("/api/publish", {"topic": "orders.new", "data": {"id": 7, "qty": [1, 2]}})
        assert r.status == 200, r
        assert r.header("Content-Type").startswith("application/json")
        # Section 11: {"seq":N} only; delivery counts are per worker.
        assert r.json() == {"seq": 1}
        m = await recv_json(sub)
        assert m == {"type": "message", "topic": "orders.new", "seq": 1, "data": {"id": 7, "qty": [1, 2]}}
        await sub.close()

    run(go())


def test_http_publish_null_data_is_allowed(broker):
    r = broker.post("/api/publish", {"topic": "n", "data": None})
    assert r.status == 200 and r.json() == {"seq": 1}


def test_http_publish_accepts_nul_escape_like_websocket_publish(broker):
    """Section 11: members are checked as for the WebSocket publish, which
    accepts \\u0000 in strings (section 2); the HTTP path must too."""
    r = broker.post("/api/publish", '{"topic":"nul","data":"a\\u0000b"}')
    assert r.status == 200 and r.json() == {"seq": 1}, r.body


def test_http_publish_array_returns_results_per_item(broker):
    body = [{"topic": "batch.a", "data": 1}, {"topic": "$sys.x", "data": 2}, {"topic": "batch.a", "data": 3},
            {"topic": "a..b", "data": 4}, 5, {"data": 6}, {"topic": "batch.b"}]
    r = broker.post("/api/publish", body)
    assert r.status == 200, r
    res = r.json()["results"]
    assert len(res) == len(body)
    assert res[0] == {"seq": 1}
    assert res[1]["error"]["code"] == "forbidden"
    assert res[2] == {"seq": 2}
    assert res[3]["error"]["code"] == "bad_topic"
    assert res[4]["error"]["code"] in ("bad_json", "bad_field")
    assert res[5]["error"]["code"] == "missing_field"
    assert res[6]["error"]["code"] == "missing_field"


def test_http_publish_empty_array(broker):
    r = broker.post("/api/publish", [])
    assert r.status == 200 and r.json() == {"results": []}


@pytest.mark.parametrize("body,status,code", [
    ("{not json", 400, "bad_json"),
    ("", 400, "bad_json"),
    ('{"topic":"a","data":1} trailing', 400, "bad_json"),
    ('{"topic":"a","topic":"b","data":1}', 400, "bad_json"),
    ('{"data":1}', 400, "missing_field"),
    ('{"topic":"a"}', 400, "missing_field"),
    ('{"topic":5,"data":1}', 400, "bad_field"),
    ('{"topic":"a.*","data":1}', 400, "bad_topic"),
    ('{"topic":"a.>","data":1}', 400, "bad_topic"),
    ('{"topic":"a..b","data":1}', 400, "bad_topic"),
    ('{"topic":"","data":1}', 400, "bad_topic"),
    ('{"topic":"$sys.x","data":1}', 403, "forbidden"),
])
def test_http_publish_errors(broker, body, status, code):
    r = broker.post("/api/publish", body)
    assert r.status == status, r
    err = r.json()["error"]
    assert err["code"] == code and isinstance(err["message"], str) and err["message"], err


@pytest.mark.parametrize("ctype,origin", [
    ("text/plain", None), ("application/jsonp", None), ("json", None), (None, None),
    ("multipart/form-data; boundary=x", None), ("text/plain", "https://evil.example"),
    # curl's default type is accepted from non-browsers only: a browser (it
    # always sends Origin on a POST) may send it cross-site without preflight.
    ("application/x-www-form-urlencoded", "https://evil.example"),
    ("application/x-www-form-urlencoded", "null"),
])
def test_http_publish_wrong_content_type_is_415(broker, ctype, origin):
    r = broker.post("/api/publish", {"topic": "a", "data": 1}, content_type=ctype,
                    headers={"Origin": origin} if origin else None)
    assert r.status == 415, r
    assert r.json()["error"]["code"] == "unsupported_media_type"
    assert broker.metric("wsbroker_messages_published_total") == 0


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "Application/JSON",
                                   "application/x-www-form-urlencoded"])
def test_http_publish_content_type_variants_accepted(broker, ctype):
    r = broker.post("/api/publish", {"topic": "a", "data": 1}, content_type=ctype)
    assert r.status == 200 and r.json() == {"seq": 1}, r


def test_readme_curl_command_reaches_the_demo_page_subscription(broker):
    """Issue 3's "done when": `curl -d '{"topic":"demo.hello",...}' URL/api/publish`
    (curl's default Content-Type, no -H) shows up on the demo page, which
    subscribes to demo.> (web/app.js)."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed for this test (Debian package curl)")
    app = (REPO_ROOT / "web" / "app.js").read_text()
    assert 'client.subscribe("demo.>"' in app, "the demo page no longer subscribes to demo.>"

    async def go():
        sub = await connect(broker.ws_url)
        await subscribe(sub, "demo.>", 1)
        out = await asyncio.to_thread(
            subprocess.run,
            [curl, "-sS", "-d", '{"topic":"demo.hello","data":{"text":"hi"}}', f"{broker.url}/api/publish"],
            capture_output=True, text=True, timeout=10)
        assert out.returncode == 0 and json.loads(out.stdout) == {"seq": 1}, out
        m = await recv_json(sub)
        assert m == {"type": "message", "topic": "demo.hello", "seq": 1, "data": {"text": "hi"}}, m
        await sub.close()

    run(go())


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_http_publish_wrong_method_is_405(broker, method):
    r = wsraw.http_request(broker.host, broker.port, method, "/api/publish")
    assert r.status == 405 and r.header("Allow") == "POST"


@pytest.mark.broker_args("--max-http-body", "1KiB")
def test_http_publish_body_too_large_is_413(broker):
    r = broker.post("/api/publish", {"topic": "big", "data": "x" * 2000})
    assert r.status == 413
    # The publish API's JSON error, naming the limit (it was the parser's
    # text/plain message, which named no config key).
    assert r.header("Content-Type").startswith("application/json"), r
    err = r.json()["error"]
    assert err["code"] == "too_large" and "max_http_body" in err["message"] and "1024" in err["message"], err
    # A chunked body that grows past the limit gets the same.
    c = broker.conn()
    chunk = b"y" * 600
    c.send(req("POST", "/api/publish", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
           + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 3 + b"0\r\n\r\n")
    r = wsraw.read_response(c)
    assert r.status == 413 and r.json()["error"]["code"] == "too_large", r
    assert c.wait_closed() == "eof"
    r = broker.post("/api/publish", {"topic": "big", "data": "x" * 900})
    assert r.status == 200
    broker.assert_healthy()


def test_http_publish_chunked_body(broker):
    c = broker.conn()
    body = json.dumps({"topic": "chunky", "data": "abc"}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    c.send(req("POST", "/api/publish", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
           + chunks + b"0\r\n\r\n")
    r = wsraw.read_response(c)
    assert r.status == 200 and r.json()["seq"] == 1, r


def test_http_publish_keep_alive_many_requests(broker):
    c = broker.conn()
    for i in range(50):
        body = json.dumps({"topic": "ka", "data": i}).encode()
        c.send(req("POST", "/api/publish", {"Content-Type": "application/json"}, body))
        r = wsraw.read_response(c)
        assert r.status == 200 and r.json()["seq"] == i + 1


def test_unknown_path_without_web_root_is_404(broker_factory):
    b = broker_factory("--web-root", "")
    assert b.get("/nothing/here").status == 404
    assert b.get("/").status == 404


# ---- header timeout (slowloris) -----------------------------------------------------------------


@pytest.mark.broker_args("--header-timeout", "1s")
def test_half_request_head_gets_408_and_close_within_header_timeout(broker):
    c = broker.conn()
    t0 = time.monotonic()
    c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    data = c.read_to_eof(timeout=10)
    elapsed = time.monotonic() - t0
    # Lower bound strict; upper bound only "it does close" (slow machines).
    assert 0.8 <= elapsed <= 8.0, f"closed after {elapsed:.2f}s with --header-timeout 1s"
    # PROTOCOL.md section 9: HTTP 408, connection closed.
    assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert broker.metric("wsbroker_header_timeouts_total") == 1
    broker.assert_healthy()


@pytest.mark.broker_args("--header-timeout", "1s")
def test_trickled_request_head_does_not_extend_header_timeout(broker):
    c = broker.conn()
    t0 = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100
    closed_at = None
    for i in range(len(head)):
        try:
            c.send(head[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.monotonic() - t0
            break
        # One byte every 50 ms: the head would take 6+ s to arrive.
        try:
            c.sock.settimeout(0.05)
            d = c.sock.recv(4096)
            if d == b"" or d.startswith(b"HTTP/1.1 408"):
                closed_at = time.monotonic() - t0
                break
        except TimeoutError:
            pass
        except OSError:
            closed_at = time.monotonic() - t0
            break
        if time.monotonic() - t0 > 5:
            break
    assert closed_at is not None, "broker kept a trickling client for 5 s"
    assert closed_at <= 3.0, f"closed after {closed_at:.2f}s with --header-timeout 1s"


@pytest.mark.broker_args("--header-timeout", "1s")
def test_idle_keep_alive_connection_is_closed_by_header_timeout(broker):
    c = broker.conn()
    c.send(req("GET", "/healthz"))
    assert wsraw.read_response(c).status == 200
    t0 = time.monotonic()
    data = c.read_to_eof(timeout=5)
    assert time.monotonic() - t0 <= 3.0
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]


@pytest.mark.broker_args("--header-timeout", "1s")
def test_upgraded_connection_is_not_hit_by_header_timeout(broker):
    c = broker.raw_ws()
    time.sleep(1.5)
    c.send_json({"type": "ping", "id": 1})
    assert c.recv_json() == {"type": "pong", "id": 1}
