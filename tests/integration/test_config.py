"""The command-line contract: config errors exit 2 naming the key, precedence
flag > env > file > default, values with units, and exit 1 when the port is taken."""
from __future__ import annotations

import json
import re
import socket

import pytest

import wsraw
from helpers import REPO_ROOT, run_broker_cmd, wait_for

# Every run gets a free port and loopback, so a config that is wrongly accepted
# does not bind 8080; it is then caught by the timeout in run_broker_cmd.
SAFE = ["--port", "0", "--host", "127.0.0.1"]


def assert_config_error(res, *names):
    assert res.returncode == 2, f"exit {res.returncode}, stderr: {res.stderr}"
    for n in names:
        assert n in res.stderr, f"stderr does not name {n!r}: {res.stderr}"


@pytest.mark.parametrize("args,names", [
    (["--bogus-flag", "1"], ["bogus-flag"]),
    (["--max-message-size", "lots"], ["max_message_size"]),
    (["--max-message-size", "-5"], ["max_message_size"]),
    (["--max-message-size", "64QiB"], ["max_message_size"]),
    (["--port", "70000"], ["port"]),
    (["--port", "eighty"], ["port"]),
    (["--ping-interval", "soon"], ["ping_interval"]),
    (["--idle-timeout", "10parsecs"], ["idle_timeout"]),
    (["--header-timeout", "-1s"], ["header_timeout"]),
    (["--max-connections", "0"], ["max_connections"]),
    (["--ws-path", "ws"], ["ws_path"]),
    (["--echo-path", "no-slash"], ["echo_path"]),
    (["--log-level", "chatty"], ["log_level"]),
    (["--node-id", "has space"], ["node_id"]),
    (["--max-outbound-bytes", "1.5B"], ["max_outbound_bytes"]),
])
def test_bad_flag_exits_2_naming_the_key(args, names):
    assert_config_error(run_broker_cmd(SAFE + args), *names)


def test_ping_interval_not_below_idle_timeout_exits_2():
    res = run_broker_cmd(SAFE + ["--ping-interval", "1m", "--idle-timeout", "1m"])
    assert_config_error(res, "ping_interval")


def test_flag_missing_its_value_exits_2():
    res = run_broker_cmd(SAFE + ["--max-message-size"])
    assert_config_error(res, "max")


def test_positional_argument_exits_2():
    res = run_broker_cmd(SAFE + ["stray"])
    assert res.returncode == 2, res
    assert "stray" in res.stderr


@pytest.mark.parametrize("content,names", [
    ({"bogus_key": 1}, ["bogus_key"]),
    ({"max_message_size": "lots"}, ["max_message_size"]),
    ({"port": "abc"}, ["port"]),
    ({"port": -1}, ["port"]),
    ({"ping_interval": True}, ["ping_interval"]),
    ({"ws_path": 5}, ["ws_path"]),
    ({"resp": {"nope": 1}}, ["resp"]),
])
def test_bad_key_in_config_file_exits_2_naming_the_key(tmp_path, content, names):
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(content))
    assert_config_error(run_broker_cmd(SAFE + ["--config", str(f)]), *names)


@pytest.mark.parametrize("text", ['{"port": ', "not json at all", '{"port": 1, "port": 2}', "[1, 2]", "42", ""])
def test_malformed_config_file_exits_2_naming_the_file(tmp_path, text):
    f = tmp_path / "broken.json"
    f.write_text(text)
    res = run_broker_cmd(SAFE + ["--config", str(f)])
    assert_config_error(res, "config", str(f))


def test_missing_config_file_exits_2(tmp_path):
    res = run_broker_cmd(SAFE + ["--config", str(tmp_path / "absent.json")])
    assert_config_error(res, "absent.json")


@pytest.mark.parametrize("var,value,names", [
    ("WSB_MAX_MESSAGE_SIZE", "lots", ["max_message_size"]),
    ("WSB_PING_INTERVAL", "often", ["ping_interval"]),
    ("WSB_PORT", "99999", ["port"]),
    # What Kubernetes injects for a Service named "wsb": a known key, a bad value.
    ("WSB_PORT", "tcp://10.0.0.1:8080", ["port", "tcp://10.0.0.1:8080"]),
])
def test_bad_env_var_exits_2_naming_it(var, value, names):
    assert_config_error(run_broker_cmd(SAFE, env={var: value}), *names)


def test_unknown_env_var_is_a_warning_naming_the_nearest_key(broker_factory):
    """A wrapper's own WSB_* variable must not stop the broker; a typo is
    still seen, with the key it probably meant. Known variables still apply."""
    b = broker_factory(env={"WSB_PROT": "9000", "WSB_BIN": "/usr/bin/true",
                            "WSB_WS_PATH": "/x"})
    assert upgrade_status(b, "/x") == 101
    err = b.stderr()
    assert "level=warn" in err and \
        "unknown environment variable WSB_PROT ignored; did you mean WSB_PORT?" in err, err
    assert "unknown environment variable WSB_BIN ignored; it is no config key" in err, err


def test_help_lists_flags_and_env_vars():
    res = run_broker_cmd(["--help"])
    assert res.returncode == 0, res.stderr
    for s in ["--max-message-size", "WSB_MAX_MESSAGE_SIZE", "--ws-path", "WSB_WS_PATH", "--idle-timeout",
              "--port-file", "--shutdown-timeout"]:
        assert s in res.stdout, s


def test_version_exits_0():
    res = run_broker_cmd(["--version"])
    assert res.returncode == 0 and res.stdout.strip(), res


# ---- values reach the broker -------------------------------------------------------------------


def upgrade_status(b, path):
    with wsraw.Conn(b.host, b.port) as c:
        c.send(wsraw.upgrade_request(path))
        return wsraw.read_response(c).status


def test_flag_beats_env_var(broker_factory):
    b = broker_factory("--ws-path", "/b", env={"WSB_WS_PATH": "/a"})
    assert upgrade_status(b, "/b") == 101
    assert upgrade_status(b, "/a") == 404
    assert upgrade_status(b, "/ws") == 404


def test_env_var_beats_config_file(broker_factory, tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"ws_path": "/file", "max_subscriptions": 7}))
    b = broker_factory("--config", str(f), env={"WSB_WS_PATH": "/env"})
    assert upgrade_status(b, "/env") == 101
    assert upgrade_status(b, "/file") == 404
    c = b.track(wsraw.ws_connect(b.host, b.port, "/env"))
    assert c.welcome["limits"]["max_subscriptions"] == 7  # from the file


def test_config_file_from_wsb_config_env(broker_factory, tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"ws_path": "/viaenv"}))
    b = broker_factory(env={"WSB_CONFIG": str(f)})
    assert upgrade_status(b, "/viaenv") == 101


def test_config_file_nested_and_numeric_values(broker_factory, tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"max_message_size": 2048, "ping_interval": 1.5, "node_id": "file-node"}))
    b = broker_factory("--config", str(f))
    c = b.track(wsraw.ws_connect(b.host, b.port))
    assert c.welcome["limits"]["max_message_size"] == 2048
    assert c.welcome["limits"]["ping_interval_ms"] == 1500
    assert c.welcome["node_id"] == "file-node"


@pytest.mark.parametrize("args,limit,expected", [
    (["--max-message-size", "1KiB"], "max_message_size", 1024),
    (["--max-message-size", "2MiB"], "max_message_size", 2 * 1024 * 1024),
    (["--max-message-size", "1MB"], "max_message_size", 1000000),
    (["--max-message-size", "4096"], "max_message_size", 4096),
    (["--ping-interval", "500ms"], "ping_interval_ms", 500),
    (["--ping-interval", "2s"], "ping_interval_ms", 2000),
    (["--ping-interval", "0.25"], "ping_interval_ms", 250),
    (["--ping-interval", "1m", "--idle-timeout", "1h"], "ping_interval_ms", 60000),
    (["--ping-interval", "0"], "ping_interval_ms", 0),
])
def test_units_in_flag_values(broker_factory, args, limit, expected):
    b = broker_factory(*args)
    c = b.track(wsraw.ws_connect(b.host, b.port))
    assert c.welcome["limits"][limit] == expected


def test_env_var_sets_value(broker_factory):
    b = broker_factory(env={"WSB_MAX_SUBSCRIPTIONS": "3", "WSB_NODE_ID": "env-node"})
    c = b.track(wsraw.ws_connect(b.host, b.port))
    assert c.welcome["limits"]["max_subscriptions"] == 3
    assert c.welcome["node_id"] == "env-node"


def test_flag_equals_form_is_applied(broker_factory):
    # "--ws-path=/x" means "--ws-path /x" (it used to be accepted either way
    # by this test, which could not tell an applied flag from an ignored one).
    b = broker_factory("--ws-path=/x", "--max-subscriptions=7")
    c = b.raw_ws("/x")
    assert c.welcome["limits"]["max_subscriptions"] == 7
    r = wsraw.http_request(b.host, b.port, "GET", "/ws", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": wsraw.new_key(),
        "Sec-WebSocket-Version": "13"})
    assert r.status == 404, r


def test_port_file_written_atomically_and_logs_listening(broker):
    assert broker.port_file.read_text().endswith("\n")
    assert int(broker.port_file.read_text()) == broker.port
    assert not list(broker.port_file.parent.glob(broker.port_file.name + ".tmp*"))
    wait_for(lambda: f"addr=127.0.0.1:{broker.port}" in broker.stderr(), 5, 0.02, "the listening log line")
    line = next(l for l in broker.stderr().splitlines() if "msg=listening" in l)
    assert "level=info" in line and f"addr=127.0.0.1:{broker.port}" in line


def test_port_already_in_use_exits_1(tmp_path):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        pf = tmp_path / "port"
        res = run_broker_cmd(["--port", str(port), "--host", "127.0.0.1", "--port-file", str(pf)])
        assert res.returncode == 1, f"exit {res.returncode}; stderr: {res.stderr}"
        assert str(port) in res.stderr
        assert not pf.exists(), "port file written although the port could not be bound"
    finally:
        s.close()


def test_unwritable_port_file_exits_1(tmp_path):
    res = run_broker_cmd(SAFE + ["--port-file", str(tmp_path / "no" / "such" / "dir" / "port")])
    assert res.returncode == 1, res
    assert "port" in res.stderr


def test_two_brokers_on_port_0_get_different_ports(broker_factory):
    a = broker_factory()
    b = broker_factory()
    assert a.port != b.port
    assert a.get("/healthz").status == 200 and b.get("/healthz").status == 200


def test_kubernetes_example_sets_only_known_variables_and_no_service_links():
    """deploy/kubernetes: every WSB_* it sets is a key --help lists, and
    enableServiceLinks is off (a Service named "wsb" would inject
    WSB_PORT=tcp://..., a known key with a bad value: exit 2)."""
    text = (REPO_ROOT / "deploy" / "kubernetes" / "wsbroker.yaml").read_text()
    assert re.search(r"^\s+enableServiceLinks: false\s*$", text, re.M), "enableServiceLinks: false"
    known = set(re.findall(r"\bWSB_[A-Z0-9_]+\b", run_broker_cmd(["--help"]).stdout))
    used = set(re.findall(r"name: (WSB_[A-Z0-9_]+)", text))
    assert used and used <= known, sorted(used - known)
