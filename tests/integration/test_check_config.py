"""`wsbroker --check-config` (issue 22, item 6): the configuration is validated
by the code path of a start, printed one `key = value (source)` line per key
with secrets redacted, exit 0 / 2, nothing bound; and secrets read from files
(auth.jwt_secret_file, api_keys_file) so that they stay out of `ps`."""
from __future__ import annotations

import json
import os
import re
import socket

import pytest
import websockets

from helpers import REPO_ROOT, connect, run, run_broker_cmd
from sectools import jwt_hs256, make_cert, now

SECRET = "check-config-secret-0123456789abcdef"
API_KEY = "checkconfigkey-0123456789"
LINE = re.compile(r"^(\S+) = (.*) \((flag|env|file|default)\)$")


def effective(res) -> dict:
    """{key: (value, source)} from --check-config's output; every line parses."""
    assert res.returncode == 0, f"exit {res.returncode}, stderr: {res.stderr}"
    out = {}
    for line in res.stdout.splitlines():
        m = LINE.match(line)
        assert m, f"line not `key = value (source)`: {line!r}"
        assert m.group(1) not in out, f"{m.group(1)} printed twice"
        out[m.group(1)] = (m.group(2), m.group(3))
    return out


def help_keys() -> list:
    """Every setting --help lists, as key names (--resp-port -> resp.port or resp_port)."""
    res = run_broker_cmd(["--help"])
    return re.findall(r"^  --([a-z0-9-]+) [A-Z]", res.stdout, re.M)


def test_every_key_once_with_its_source(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"max_message_size": "128KiB", "backlog": 100, "resp": {"host": "::1"}}))
    res = run_broker_cmd(["--check-config", "--config", str(cfg), "--backlog", "64",
                          "--port", "0"], env={"WSB_IDLE_TIMEOUT": "2m", "WSB_BACKLOG": "50"})
    eff = effective(res)
    flags = help_keys()
    assert len(eff) == len(flags), "one line per setting of --help (--config included)"
    for key in eff:
        assert key.replace(".", "-").replace("_", "-") in flags
    assert eff["backlog"] == ("64", "flag")  # flag beats env and file
    assert eff["port"] == ("0", "flag")
    assert eff["idle_timeout"] == ("2m", "env")
    assert eff["max_message_size"] == ("128KiB", "file")
    assert eff["resp.host"] == ('"::1"', "file")
    assert eff["host"] == ('"127.0.0.1"', "default")
    assert eff["ping_interval"][1] == "default"
    assert eff["config"] == (f'"{cfg}"', "flag")
    env_cfg = run_broker_cmd(["--check-config"], env={"WSB_CONFIG": str(cfg)})
    assert effective(env_cfg)["config"] == (f'"{cfg}"', "env")
    assert effective(run_broker_cmd(["--check-config"]))["config"] == ('""', "default")


def test_secrets_are_redacted():
    res = run_broker_cmd(["--check-config", "--auth-jwt-secret", SECRET, "--api-keys", API_KEY,
                          "--redis-url", "redis://user:hunter2pass@127.0.0.1:1/0"])
    eff = effective(res)
    for secret in (SECRET, API_KEY, "hunter2pass"):
        assert secret not in res.stdout
    assert eff["auth.jwt_secret"] == ("<redacted>", "flag")
    assert eff["api_keys"] == ("<redacted>", "flag")
    assert eff["redis.url"] == ('"redis://user:<redacted>@127.0.0.1:1/0"', "flag")


@pytest.mark.parametrize("args,names", [
    (["--max-message-size", "lots"], ["max_message_size"]),
    (["--ping-interval", "2m", "--idle-timeout", "1m"], ["ping_interval"]),
    (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"], ["tls.cert"]),
    (["--auth-jwt-public-key", "/nonexistent/pub.pem"], ["auth.jwt_public_key"]),
])
def test_invalid_exits_2_with_the_message_of_a_start(args, names):
    check = run_broker_cmd(["--check-config", "--port", "0", *args])
    assert check.returncode == 2, check.stderr
    assert check.stdout == ""
    for n in names:
        assert n in check.stderr
    assert "configuration error" in check.stderr


def test_binds_nothing():
    """A port in use fails a start (exit 1), not a check: nothing is bound."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_broker_cmd(["--check-config", "--port", str(port)])
        assert effective(res)["port"] == (str(port), "flag")
        assert "listening" not in res.stderr
        assert run_broker_cmd(["--port", str(port)]).returncode == 1


def test_example_config_is_valid():
    res = run_broker_cmd(["--check-config", "--config", str(REPO_ROOT / "wsbroker.example.json")])
    assert effective(res)["port"][1] == "file"


def secret_file(tmp_path, text: str, mode: int = 0o600):
    p = tmp_path / "secret"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_jwt_secret_file_is_used_without_its_newline(tmp_path, broker_factory):
    path = secret_file(tmp_path, SECRET + "\n")
    b = broker_factory("--auth-required", "true", "--auth-jwt-secret-file", str(path))
    assert SECRET not in open(f"/proc/{b.pid}/cmdline").read()

    async def go():
        good = jwt_hs256({"sub": "a", "exp": now() + 60, "subscribe": [">"]}, SECRET)
        ws = await connect(b.ws_url + "?token=" + good)
        await ws.close()
        bad = jwt_hs256({"sub": "a", "exp": now() + 60, "subscribe": [">"]}, SECRET + "\n")
        with pytest.raises(websockets.exceptions.InvalidHandshake):
            await connect(b.ws_url + "?token=" + bad)

    run(go())
    assert "readable by group or others" not in b.stderr()


def test_secret_file_readable_by_others_warns(tmp_path):
    path = secret_file(tmp_path, SECRET, 0o644)
    res = run_broker_cmd(["--check-config", "--auth-jwt-secret-file", str(path)])
    assert effective(res)["auth.jwt_secret"] == ("<redacted>", "flag")
    assert "auth.jwt_secret_file" in res.stderr and "readable by group or others" in res.stderr
    assert SECRET not in res.stderr + res.stdout


@pytest.mark.parametrize("content,extra,names", [
    (SECRET, ["--auth-jwt-secret", "x"], ["auth.jwt_secret, auth.jwt_secret_file"]),
    ("\n\n", [], ["auth.jwt_secret_file", "non-empty"]),
])
def test_bad_secret_file_exits_2(tmp_path, content, extra, names):
    path = secret_file(tmp_path, content)
    res = run_broker_cmd(["--check-config", "--auth-jwt-secret-file", str(path), *extra])
    assert res.returncode == 2, res.stderr
    for n in names:
        assert n in res.stderr


def test_missing_secret_file_exits_2(tmp_path):
    res = run_broker_cmd(["--check-config", "--auth-jwt-secret-file", str(tmp_path / "none")])
    assert res.returncode == 2 and "auth.jwt_secret_file" in res.stderr


def test_api_keys_file_one_key_per_line(tmp_path):
    other = "otherkey-abcdefghijklmnop"
    path = secret_file(tmp_path, f"{API_KEY}:chat.>\n\n{other}\n")
    res = run_broker_cmd(["--check-config", "--api-keys-file", str(path)])
    assert effective(res)["api_keys"] == ("<redacted>", "flag")
    bad = secret_file(tmp_path, f"{API_KEY}\nnot a key\n")
    res = run_broker_cmd(["--check-config", "--api-keys-file", str(bad)])
    assert res.returncode == 2 and "api_keys_file" in res.stderr
    assert API_KEY not in res.stderr


def test_api_keys_file_is_what_the_broker_accepts(tmp_path, broker_factory):
    other = "otherkey-abcdefghijklmnop"
    path = secret_file(tmp_path, f"{API_KEY}:chat.>\r\n\n{other}\n")
    b = broker_factory("--api-keys-file", str(path))
    assert API_KEY not in open(f"/proc/{b.pid}/cmdline").read()
    body = {"topic": "chat.room1", "data": 1}
    assert b.post("/api/publish", body, headers={"X-API-Key": API_KEY}).status == 200
    assert b.post("/api/publish", body, headers={"X-API-Key": other}).status == 200
    # The first key's patterns came with it: chat.> only.
    refused = b.post("/api/publish", {"topic": "news.x", "data": 1}, headers={"X-API-Key": API_KEY})
    assert refused.status == 403
    assert b.post("/api/publish", body, headers={"X-API-Key": "nokey-abcdefghijklmnop"}).status == 401
