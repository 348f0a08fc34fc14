"""The wsbroker-cli examples of clients/c/README.md, run as written.

The README's example block is extracted and each command runs through bash
with the CLI on PATH and WSBROKER_URL pointing at a broker on a free port (the
one explicit --url, the default ws://127.0.0.1:8080/ws, is pointed there too).
The two subscribers run in the background; the broker's
wsbroker_subscriptions gauge (/metrics) says when they are subscribed. The
first subscriber's output must equal the README's output block.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import REPO, assert_no_sanitizer, clean_env

README = Path(os.environ.get("WSB_CLIENT_README") or REPO / "clients" / "c" / "README.md")
DEFAULT_URL = "ws://127.0.0.1:8080/ws"

EXPECTED_COMMANDS = [
    "wsbroker-cli sub 'prices.*.usd' 'orders.>'",
    "wsbroker-cli sub --count 1 --timeout 30 'orders.>'",
    "wsbroker-cli pub prices.btc.usd '{\"bid\":64000.5,\"ask\":64001}'",
    "printf '%s\\n' '{\"id\":1}' '{\"id\":2}' | wsbroker-cli pub orders.new -",
    "wsbroker-cli pub '$sys.stats' 1 || echo \"exit status $?\"",
    "wsbroker-cli --url ws://127.0.0.1:8080/ws --token secret-token pub chat.room1 '\"hello\"'",
]


def block(name: str) -> list[str]:
    text = README.read_text()
    m = re.search(rf"<!-- readme-{name}: begin -->\n```[a-z]*\n(.*?)```\n<!-- readme-{name}: end -->",
                  text, re.S)
    assert m, f"README block {name} not found"
    return [line for line in m.group(1).splitlines() if line and not line.startswith("#")]


def subscriptions(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("wsbroker_subscriptions "):
                return int(float(line.split()[1]))
    raise AssertionError("no wsbroker_subscriptions gauge in /metrics")


def wait_subscriptions(port: int, n: int):
    deadline = time.monotonic() + 10
    while subscriptions(port) < n:
        assert time.monotonic() < deadline, f"fewer than {n} subscriptions after 10 s"
        time.sleep(0.02)


def test_readme_examples_work_as_written(broker, cli):
    commands = block("examples")
    assert commands == EXPECTED_COMMANDS, "README examples changed: update this test"
    env = clean_env({
        "PATH": str(Path(cli.path).parent) + os.pathsep + os.environ.get("PATH", ""),
        "WSBROKER_URL": broker.url,
    })

    def shell(cmd, background=False):
        # A background subscriber is exec'd so that SIGINT reaches it, as Ctrl-C would.
        return ["bash", "-c", ("exec " if background else "") + cmd.replace(DEFAULT_URL, broker.url)]

    def run(cmd):
        r = subprocess.run(shell(cmd), env=env, capture_output=True, text=True, timeout=20)
        assert_no_sanitizer(r.stderr, cmd)
        return r

    procs = []
    try:
        sub_all = subprocess.Popen(shell(commands[0], True), env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        procs.append(sub_all)
        wait_subscriptions(broker.port, 2)
        sub_one = subprocess.Popen(shell(commands[1], True), env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        procs.append(sub_one)
        wait_subscriptions(broker.port, 3)

        r = run(commands[2])
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        r = run(commands[3])
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        r = run(commands[4])
        assert r.returncode == 0  # the `|| echo` ran
        assert r.stdout == "exit status 1\n"
        assert r.stderr.startswith("wsbroker-cli: publish to '$sys.stats' failed: forbidden: ")
        r = run(commands[5])
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")

        out, err = sub_one.communicate(timeout=10)
        assert sub_one.returncode == 0, err
        assert out == '{"topic":"orders.new","seq":1,"data":{"id":1}}\n'

        expected = block("output")
        deadline = time.monotonic() + 10
        os.set_blocking(sub_all.stdout.fileno(), False)
        got = ""
        while got.count("\n") < len(expected) and time.monotonic() < deadline:
            chunk = sub_all.stdout.read()
            got += chunk or ""
            time.sleep(0.02)
        assert got.splitlines() == expected
        sub_all.send_signal(signal.SIGINT)  # "Ctrl-C stops it"
        sub_all.wait(timeout=10)
        assert sub_all.returncode == 0
        assert_no_sanitizer(sub_all.stderr.read(), commands[0])
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
