"""A publish's data reaches subscribers as the bytes the publisher sent
(issue 17 item 2, PROTOCOL.md 4.2a): WebSocket, HTTP and RESP publishes are
validated by the strict scanner and their data copied into the frame, not
parsed into a tree and re-serialized. Before, `0.1` arrived as
`0.10000000000000001`, `1e2` as `100.0` and white space was dropped.

The refusals stay as they were: the same codes for the same inputs."""

import json

from helpers import resp_command
from wsraw import OP_PING, OP_PONG, OP_TEXT

# White space inside, escapes, and numbers jansson would rewrite.
DATA = b'{ "b" : [1.0, 0.1, 1e2, -0, 123456789012345678], "s": "\\u00e9\\/" , "n":null }'


def subscribe(broker, topic):
    c = broker.raw_ws()
    c.send_json({"type": "subscribe", "topic": topic, "id": 1})
    assert c.recv_json()["type"] == "ack"
    return c


def data_bytes(sub):
    """The raw bytes of the next message frame's data member (the last one)."""
    while True:
        f = sub.recv_frame()
        if f.opcode not in (OP_PING, OP_PONG):
            break
    assert f.opcode == OP_TEXT, f
    msg = json.loads(f.payload)  # the frame as a whole is valid JSON
    assert msg["type"] == "message", msg
    marker = b',"data":'
    assert f.payload.endswith(b"}"), f
    return f.payload[f.payload.rindex(marker) + len(marker):-1], msg


def test_ws_publish_forwards_the_data_bytes(broker):
    sub = subscribe(broker, "bytes.ws")
    pub = broker.raw_ws()
    pub.send_frame(OP_TEXT, b'{"type":"publish","topic":"bytes.ws","id":2,"data":  ' + DATA + b' \n}')
    assert pub.recv_json()["type"] == "ack"
    raw, msg = data_bytes(sub)
    assert raw == DATA
    assert msg["data"] == json.loads(DATA)


def test_http_publish_forwards_the_data_bytes(broker):
    sub = subscribe(broker, "bytes.http")
    r = broker.post("/api/publish", b'[{"topic":"bytes.http","data":' + DATA + b"}]")
    assert r.status == 200, r
    raw, _ = data_bytes(sub)
    assert raw == DATA
    r = broker.post("/api/publish", b'{"data":\t' + DATA + b'\t,"topic":"bytes.\\u0068ttp"}')
    assert r.status == 200, r
    raw, msg = data_bytes(sub)
    assert raw == DATA and msg["topic"] == "bytes.http"


def test_resp_publish_forwards_json_payload_bytes(broker_factory):
    b = broker_factory(resp=True)
    sub = subscribe(b, "bytes.resp")
    reply = resp_command(b.resp_port, ["PUBLISH", "bytes.resp", " " + DATA.decode() + "\n"])
    assert reply.startswith(b":"), reply
    raw, _ = data_bytes(sub)
    assert raw == DATA  # without the white space around the value
    # Not JSON: still published as a JSON string of its bytes.
    resp_command(b.resp_port, ["PUBLISH", "bytes.resp", "0.1 x"])
    raw, msg = data_bytes(sub)
    assert raw == b'"0.1 x"' and msg["data"] == "0.1 x"


def test_refusals_keep_their_codes(broker):
    c = broker.raw_ws()
    cases = [
        b'{"type":"publish","topic":"a","data":1e400,"id":1}',
        b'{"type":"publish","topic":"a","data":{"k":1,"\\u006b":2},"id":1}',
        b'{"type":"publish","topic":"a","data":"\\ud800","id":1}',
        b'{"type":"publish","topic":"a","data":[1,],"id":1}',
        b'{"type":"publish","topic":"a","data":9223372036854775808,"id":1}',
        b'{"type":"publish","topic":"a","data":1}x',
    ]
    for raw in cases:
        c.send_frame(OP_TEXT, raw)
        r = c.recv_json()
        assert r["type"] == "error" and r["code"] == "bad_json" and "id" not in r, (raw, r)
    c.send_frame(OP_TEXT, b'{"type":"publish","topic":"a","id":3}')
    assert c.recv_json() == {"type": "error", "id": 3, "code": "missing_field",
                             "message": '"data" is required for publish (use null for no payload)'}
    r = broker.post("/api/publish", b'{"topic":"a","data":[1e999]}')
    assert r.status == 400 and r.json()["error"]["code"] == "bad_json", r
