"""The wsbroker-cli examples of clients/c/README.md and README.md, run as written.

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


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def subscriptions(port: int) -> int:
    return int(metric(port, "wsbroker_subscriptions"))


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


# ---- the top-level README.md's "Command line" examples -----------------------------------

TOP_README = REPO / "README.md"
TOP_CLI = "build/clients/c/wsbroker-cli"
TOP_EXPECTED = [
    "build/clients/c/wsbroker-cli sub 'demo.>'",
    "build/clients/c/wsbroker-cli pub demo.hello '{\"text\":\"hi\"}'",
    "printf '%s\\n' 1 2 3 | build/clients/c/wsbroker-cli pub demo.count -",
    "build/clients/c/wsbroker-cli --url wss://127.0.0.1:8443/ws --cafile cert.pem sub 'demo.>'",
]


def top_readme_cli_block() -> list[str]:
    """The sh block of README.md's Clients section that runs wsbroker-cli,
    each line without its trailing comment."""
    section = TOP_README.read_text().split("\n## Clients\n", 1)[1].split("\n## ", 1)[0]
    for m in re.finditer(r"```sh\n(.*?)```", section, re.S):
        if TOP_CLI in m.group(1):
            return [re.sub(r"\s+# .*$", "", line) for line in m.group(1).splitlines() if line.strip()]
    raise AssertionError("no wsbroker-cli block in README.md's Clients section")


def test_top_readme_cli_examples_work_as_written(broker_factory, cli, tmp_path):
    """Each command of README.md's CLI block, as written, from a folder where
    build/clients/c/wsbroker-cli is the CLI under test and cert.pem the TLS
    broker's certificate. The default URL (port 8080) and the TLS example's
    port 8443 are pointed at brokers on free ports, nothing else changes."""
    commands = top_readme_cli_block()
    assert commands == TOP_EXPECTED, "README.md's CLI examples changed: update this test"
    (tmp_path / "build" / "clients" / "c").mkdir(parents=True)
    (tmp_path / "build" / "clients" / "c" / "wsbroker-cli").symlink_to(cli.path)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], cwd=tmp_path, check=True, capture_output=True)
    plain = broker_factory(name="plain")
    tls = broker_factory("--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"),
                         "--tls-port", "0", "--tls-port-file", str(tmp_path / "wss.port"), name="tls")
    tls_port = int((tmp_path / "wss.port").read_text())
    env = clean_env({"WSBROKER_URL": plain.url})

    def shell(cmd, background=False):
        cmd = cmd.replace("127.0.0.1:8443", f"127.0.0.1:{tls_port}")
        return ["bash", "-c", ("exec " if background else "") + cmd]

    def start(cmd, port):
        p = subprocess.Popen(shell(cmd, True), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        try:
            wait_subscriptions(port, 1)
        except AssertionError:
            os.kill(p.pid, signal.SIGKILL)
            raise AssertionError(f"{cmd}: not subscribed; stderr: {p.communicate(timeout=10)[1]}") from None
        return p

    def stop(p, cmd, lines):
        """Ctrl-C once the subscriber has printed `lines` lines; all it printed."""
        os.set_blocking(p.stdout.fileno(), False)
        got, deadline = "", time.monotonic() + 10
        while got.count("\n") < lines and time.monotonic() < deadline:
            got += p.stdout.read() or ""
            time.sleep(0.02)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
        err = p.stderr.read()
        assert p.returncode == 0, err
        assert_no_sanitizer(err, cmd)
        return got + (p.stdout.read() or "")

    procs = []
    try:
        sub = start(commands[0], plain.port)
        for cmd in commands[1:3]:
            r = subprocess.run(shell(cmd), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20)
            assert_no_sanitizer(r.stderr, cmd)
            assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), (cmd, r)
        assert stop(sub, commands[0], 4).splitlines() == [
            '{"topic":"demo.hello","seq":1,"data":{"text":"hi"}}',
            '{"topic":"demo.count","seq":1,"data":1}',
            '{"topic":"demo.count","seq":2,"data":2}',
            '{"topic":"demo.count","seq":3,"data":3}',
        ]

        tls_sub = start(commands[3], tls.port)
        r = subprocess.run(shell(commands[1].replace(TOP_CLI, f"{TOP_CLI} --url wss://127.0.0.1:8443/ws "
                                                     "--cafile cert.pem")),
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20)
        assert (r.returncode, r.stderr) == (0, ""), r
        assert stop(tls_sub, commands[3], 1) == '{"topic":"demo.hello","seq":1,"data":{"text":"hi"}}\n'
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.communicate(timeout=10)
