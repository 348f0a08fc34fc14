"""PROTOCOL.md describes everything the code emits: every error code, every
close code and every limit default, checked against the sources and the
binary's --help so that a code or a default added later without its line in
the spec fails here (the audit of issue 2 found several such omissions)."""
from __future__ import annotations

import re
import subprocess

from helpers import REPO_ROOT

DOC = (REPO_ROOT / "protocol" / "PROTOCOL.md").read_text(encoding="utf-8")


def section(number: str) -> str:
    """The text of `## <number>. …` up to the next level-2 heading."""
    m = re.search(rf"^## {re.escape(number)}\. .*?(?=^## )", DOC, re.S | re.M)
    assert m, f"PROTOCOL.md has no section {number}"
    return m.group(0)


def table_rows(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def source(path: str) -> str:
    return (REPO_ROOT / path).read_text(encoding="utf-8")


def test_every_error_code_is_documented_and_every_documented_code_exists():
    defined = set(re.findall(r'#define WSB_ERR_\w+\s+"([a-z_]+)"', source("protocol/include/wsb/message.h")))
    assert {"bad_json", "bad_type", "bad_topic", "missing_field", "too_large"} <= defined
    documented = {row[0].strip("`") for row in table_rows(section("7"))[1:]}
    assert defined - documented == set(), "error codes missing from PROTOCOL.md section 7"
    assert documented - defined == set(), "PROTOCOL.md section 7 lists codes the code does not define"


def test_http_only_error_codes_are_documented():
    api = source("broker/ingress/http_api.c")
    literal = set(re.findall(r'respond_error\(c, \d+, "([a-z_]+)"', api))
    assert literal, "no literal error codes found in http_api.c: update this test"
    http = section("11")
    for code in literal:
        assert f"`{code}`" in http, f"HTTP error code {code} missing from PROTOCOL.md section 11"


def close_constants() -> dict[str, int]:
    header = source("protocol/include/wsb/ws_frame.h")
    return {name: int(value) for name, value in re.findall(r"#define (WSB_WS_CLOSE_\w+)\s+(\d+)", header)}


def test_every_close_code_sent_is_documented():
    values = close_constants()
    sent = set()
    # The broker's own closes, and the parser's failures (which the broker
    # sends as they are: session.c closes with parser.close_code).
    for path in sorted((REPO_ROOT / "broker").rglob("*.c")):
        text = path.read_text(encoding="utf-8")
        sent |= set(re.findall(r"conn_ws_close\([^,]+,\s*(WSB_WS_CLOSE_\w+)", text))
        # Upgrades refused with 101 and a close at once (PROTOCOL.md 10).
        sent |= set(re.findall(r"refuse_credentials\([^,]+,[^,]+,\s*(WSB_WS_CLOSE_\w+)", text))
    sent |= set(re.findall(r"fail\(p, (WSB_WS_CLOSE_\w+)", source("protocol/ws_frame.c")))
    assert "conn_ws_close(c, s->parser.close_code" in source("broker/ingress/ws_session.c")
    codes = {values[name] for name in sent}
    assert {1001, 1002, 1003, 1007, 1008, 1009, 1011, 1013, 4001, 4002, 4003} <= codes
    documented = {int(row[0]) for row in table_rows(section("8"))[1:]}
    assert codes - documented == set(), "close codes missing from PROTOCOL.md section 8"


# --help flag -> the first column of PROTOCOL.md section 9's row for it.
LIMITS = {
    "--max-message-size": "message size",
    "--max-subscriptions": "subscriptions per connection",
    "--max-outbound-bytes": "outbound buffer per connection",
    "--max-header-size": "HTTP request header section",
    "--header-timeout": "HTTP request header timeout",
    "--max-http-body": "HTTP request body",
    "--ping-interval": "server WebSocket Ping interval",
    "--idle-timeout": "idle timeout",
    "--auth-timeout": "`auth` after the handshake",
    "--max-connections": "open connections",
    "--rate-messages": "messages / bytes per second",
    "--max-connections-per-ip": "connections per client IP",
    "--max-connections-per-user": "WebSockets per user",
    "--history-max-bytes": "history held, all topics together",
    "--presence-max-members": "members per presence topic",
    "--presence-max-topics": "presence topics with members",
    "--presence-node-ttl": "silence after which a federated node",
    "--max-history-topics-per-subscribe": "topics with history replayed by one subscribe",
}


def normalized(value: str) -> str:
    """'64 KiB (65536 bytes)' and '64KiB' -> '64kib'; 'unlimited' -> '0'."""
    value = value.split("(")[0].replace(" ", "").lower().strip('"')
    return "0" if value == "unlimited" else value


def test_limit_defaults_match_the_binary(wsbroker_bin):
    help_text = subprocess.run([wsbroker_bin, "--help"], capture_output=True, text=True, check=True).stdout
    defaults = dict(re.findall(r"^\s+(--[a-z-]+) \S+\s+WSB_\w+\s+\(default ([^)]*)\)", help_text, re.M))
    rows = table_rows(section("9"))[1:]
    for flag, row_start in LIMITS.items():
        assert flag in defaults, f"{flag} not in --help"
        matching = [row for row in rows if row[0].startswith(row_start)]
        assert len(matching) == 1, f"PROTOCOL.md section 9 has no single row starting {row_start!r}"
        assert normalized(matching[0][1]) == normalized(defaults[flag]), (
            f"{flag}: PROTOCOL.md says {matching[0][1]!r}, the broker's default is {defaults[flag]!r}"
        )
