"""Protocol-level (JSON) errors: each gets an error reply with the stable code,
the request's id echoed when it could be read, and the connection stays open."""
from __future__ import annotations

import pytest

import wsraw
from wsraw import OP_TEXT

CASES = [
    # (name, raw text, expected code, expected id or None)
    ("not_json", "this is not json", "bad_json", None),
    ("empty_message", "", "bad_json", None),
    ("truncated", '{"type":"ping"', "bad_json", None),
    ("array", '[{"type":"ping","id":1}]', "bad_json", None),
    ("string", '"ping"', "bad_json", None),
    ("number", "42", "bad_json", None),
    ("trailing_bytes", '{"type":"ping","id":1} x', "bad_json", None),
    ("two_values", '{"type":"ping"}{"type":"ping"}', "bad_json", None),
    ("duplicate_keys", '{"type":"ping","type":"ping","id":3}', "bad_json", None),
    ("nan", '{"type":"publish","topic":"a","data":NaN,"id":4}', "bad_json", None),
    ("missing_type", '{"id":5}', "bad_type", 5),
    ("unknown_type", '{"type":"frobnicate","id":6}', "bad_type", 6),
    ("type_not_string", '{"type":1,"id":7}', "bad_type", 7),
    ("type_wrong_case", '{"type":"PING","id":8}', "bad_type", 8),
    ("subscribe_no_topic", '{"type":"subscribe","id":9}', "missing_field", 9),
    ("unsubscribe_no_topic", '{"type":"unsubscribe","id":10}', "missing_field", 10),
    ("publish_no_topic", '{"type":"publish","data":1,"id":11}', "missing_field", 11),
    ("publish_no_data", '{"type":"publish","topic":"a","id":12}', "missing_field", 12),
    ("topic_not_string", '{"type":"subscribe","topic":5,"id":13}', "bad_field", 13),
    ("topic_null", '{"type":"subscribe","topic":null,"id":14}', "bad_field", 14),
    ("empty_topic", '{"type":"subscribe","topic":"","id":15}', "bad_topic", 15),
    ("empty_token", '{"type":"subscribe","topic":"a..b","id":16}', "bad_topic", 16),
    ("leading_dot", '{"type":"subscribe","topic":".a","id":17}', "bad_topic", 17),
    ("trailing_dot", '{"type":"subscribe","topic":"a.","id":18}', "bad_topic", 18),
    ("gt_not_last", '{"type":"subscribe","topic":"a.>.b","id":19}', "bad_topic", 19),
    ("star_in_token", '{"type":"subscribe","topic":"a.b*","id":20}', "bad_topic", 20),
    ("space_in_topic", '{"type":"subscribe","topic":"a b","id":21}', "bad_topic", 21),
    ("control_char", '{"type":"subscribe","topic":"a\\u0001b","id":22}', "bad_topic", 22),
    ("publish_wildcard", '{"type":"publish","topic":"a.*","data":1,"id":23}', "bad_topic", 23),
    ("publish_gt", '{"type":"publish","topic":"a.>","data":1,"id":24}', "bad_topic", 24),
    ("publish_reserved", '{"type":"publish","topic":"$sys.stats","data":1,"id":25}', "forbidden", 25),
    ("since_on_pattern", '{"type":"subscribe","topic":"a.*","since":{"epoch":"e","seq":1},"id":26}', "bad_since", 26),
    ("since_malformed", '{"type":"subscribe","topic":"a","since":5,"id":27}', "bad_since", 27),
    ("since_on_publish", '{"type":"publish","topic":"a","data":1,"since":{"epoch":"e","seq":1},"id":28}', "bad_since", 28),
    ("id_negative", '{"type":"ping","id":-1}', "bad_field", None),
    ("id_fraction", '{"type":"ping","id":1.5}', "bad_field", None),
    ("id_string", '{"type":"ping","id":"7"}', "bad_field", None),
    ("id_too_big", '{"type":"ping","id":9007199254740992}', "bad_field", None),
    ("no_id_bad_topic", '{"type":"subscribe","topic":"a..b"}', "bad_topic", None),
    ("id_null", '{"type":"ping","id":null}', "bad_field", None),
    ("id_one_point_zero", '{"type":"ping","id":1.0}', "bad_field", None),
    ("id_exponent", '{"type":"ping","id":1e2}', "bad_field", None),
    ("id_bool", '{"type":"ping","id":true}', "bad_field", None),
    ("integer_beyond_int64", '{"type":"publish","topic":"a","data":99999999999999999999,"id":1}', "bad_json", None),
    ("real_overflow", '{"type":"publish","topic":"a","data":1e400,"id":1}', "bad_json", None),
    ("infinity", '{"type":"publish","topic":"a","data":Infinity,"id":1}', "bad_json", None),
    ("trailing_comma", '{"type":"ping","id":1,}', "bad_json", None),
    ("single_quotes", "{'type':'ping'}", "bad_json", None),
    ("comment", '{"type":"ping"} // hi', "bad_json", None),
    ("duplicate_inside_data", '{"type":"publish","topic":"a","data":{"k":1,"k":2},"id":3}', "bad_json", None),
    ("topic_257_bytes", '{"type":"subscribe","topic":"%s","id":40}' % ("a" * 257), "bad_topic", 40),
    ("topic_nul_escape", '{"type":"subscribe","topic":"a\\u0000b","id":41}', "bad_topic", 41),
    ("since_epoch_empty", '{"type":"subscribe","topic":"a","since":{"epoch":"","seq":1},"id":42}', "bad_since", 42),
    ("since_epoch_65_bytes", '{"type":"subscribe","topic":"a","since":{"epoch":"%s","seq":1},"id":43}' % ("e" * 65), "bad_since", 43),
    ("since_seq_negative", '{"type":"subscribe","topic":"a","since":{"epoch":"e","seq":-1},"id":44}', "bad_since", 44),
    ("since_seq_string", '{"type":"subscribe","topic":"a","since":{"epoch":"e","seq":"1"},"id":45}', "bad_since", 45),
    ("since_on_unsubscribe", '{"type":"unsubscribe","topic":"a","since":{"epoch":"e","seq":1},"id":46}', "bad_since", 46),
    ("nesting_2049", '{"type":"publish","topic":"a","data":%s%s,"id":47}' % ("[" * 2048, "]" * 2048), "bad_json", None),
]


@pytest.mark.parametrize("name,text,code,id_", CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_error_reply_and_connection_stays_open(broker, name, text, code, id_):
    c = broker.raw_ws()
    c.send_frame(wsraw.OP_TEXT, text.encode())
    r = c.recv_json()
    assert r["type"] == "error", r
    assert r["code"] == code, r
    assert isinstance(r["message"], str) and r["message"], r
    if id_ is None:
        assert "id" not in r, r
    else:
        assert r["id"] == id_, r
    # The session is still usable.
    c.send_json({"type": "ping", "id": 77})
    assert c.recv_json() == {"type": "pong", "id": 77}
    # Exactly one error, nothing else queued: a second ping is the next reply.
    c.send_json({"type": "ping", "id": 78})
    assert c.recv_json() == {"type": "pong", "id": 78}


def test_error_codes_are_counted_in_metrics(broker):
    c = broker.raw_ws()
    c.send_frame(wsraw.OP_TEXT, b"nope")
    assert c.recv_json()["code"] == "bad_json"
    c.send_json({"type": "subscribe", "topic": "a..b", "id": 1})
    assert c.recv_json()["code"] == "bad_topic"
    m = broker.metrics()
    assert m['wsbroker_protocol_errors_total{code="bad_json"}'] == 1
    assert m['wsbroker_protocol_errors_total{code="bad_topic"}'] == 1


def test_many_bad_requests_in_a_row_do_not_break_the_session(broker):
    c = broker.raw_ws()
    batch = b"".join(wsraw.build_frame(wsraw.OP_TEXT, b"{bad") for _ in range(200))
    c.send(batch)
    for _ in range(200):
        assert c.recv_json()["code"] == "bad_json"
    c.send_json({"type": "ping", "id": 1})
    assert c.recv_json() == {"type": "pong", "id": 1}
    broker.assert_healthy()


def test_nesting_of_2048_levels_is_accepted(broker):
    # The request object is level 1; 2047 nested arrays make 2048 in all.
    sub = broker.raw_ws()
    sub.send_json({"type": "subscribe", "topic": "deep", "id": 1})
    assert sub.recv_json()["type"] == "ack"
    c = broker.raw_ws()
    c.send_frame(OP_TEXT, ('{"type":"publish","topic":"deep","data":%s%s,"id":2}' % ("[" * 2047, "]" * 2047)).encode())
    assert c.recv_json() == {"type": "ack", "id": 2, "seq": 1}
    f = sub.recv_frame()
    assert f.payload.endswith(b'"data":' + b"[" * 2047 + b"]" * 2047 + b"}")


def test_since_epoch_of_64_bytes_is_accepted(broker):
    c = broker.raw_ws()
    c.send_json({"type": "subscribe", "topic": "a", "since": {"epoch": "e" * 64, "seq": 0}, "id": 1})
    assert c.recv_json() == {"type": "ack", "id": 1, "recovered": False}


def test_nul_and_escapes_in_data_values_roundtrip(broker):
    sub = broker.raw_ws()
    sub.send_json({"type": "subscribe", "topic": "esc", "id": 1})
    assert sub.recv_json()["type"] == "ack"
    c = broker.raw_ws()
    data = {"s": "a\u0000b\"\\\n\t\u2028", "list": ["\u0000", "\x7f"]}
    c.send_json({"type": "publish", "topic": "esc", "data": data, "id": 2})
    assert c.recv_json() == {"type": "ack", "id": 2, "seq": 1}
    assert sub.recv_json()["data"] == data


def test_nul_escape_in_data_object_key_is_refused_as_documented(broker):
    """PROTOCOL.md section 2: member names may not contain \\u0000 (the JSON
    library cannot represent them): bad_json (the request could not be read,
    so no id is echoed), and the connection stays usable."""
    c = broker.raw_ws()
    c.send_json({"type": "publish", "topic": "esc", "data": {"k\u0000": 1}, "id": 2})
    r = c.recv_json()
    assert r["type"] == "error" and r["code"] == "bad_json" and "id" not in r, r
    assert "NUL" in r["message"], r
    c.send_json({"type": "publish", "topic": "esc", "data": {"k": "v\u0000"}, "id": 3})
    assert c.recv_json() == {"type": "ack", "id": 3, "seq": 1}
