"""The wsbroker-cli examples of clients/c/README.md and README.md, run as written.

The README's example block is extracted and each command runs through bash,
from a folder where build/clients/c/wsbroker-cli (the one path every doc uses,
relative to the repository root) is the CLI under test, with WSBROKER_URL
pointing at a broker on a free port (the one explicit --url, the default
ws://127.0.0.1:8080/ws, is pointed there too).
The two subscribers run in the background; the broker's
wsbroker_subscriptions gauge (/metrics) says when they are subscribed. The
first subscriber's output must equal the README's output block.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from conftest import REPO, assert_no_sanitizer, clean_env

README = Path(os.environ.get("WSB_CLIENT_README") or REPO / "clients" / "c" / "README.md")
DEFAULT_URL = "ws://127.0.0.1:8080/ws"

CLI = "build/clients/c/wsbroker-cli"  # relative to the repository root, in every doc
EXPECTED_COMMANDS = [
    f"{CLI} sub 'prices.*.usd' 'orders.>'",
    f"{CLI} sub --count 1 --timeout 30 'orders.>'",
    f"{CLI} pub prices.btc.usd '{{\"bid\":64000.5,\"ask\":64001}}'",
    f"printf '%s\\n' '{{\"id\":1}}' '{{\"id\":2}}' | {CLI} pub orders.new -",
    f"{CLI} pub '$sys.stats' 1 || echo \"exit status $?\"",
    f"{CLI} --url ws://127.0.0.1:8080/ws --token secret-token pub chat.room1 '\"hello\"'",
]


def repo_like(tmp_path, cli) -> Path:
    """A folder laid out like the repository root for what the examples use:
    build/clients/c/wsbroker-cli is the CLI under test."""
    (tmp_path / "build" / "clients" / "c").mkdir(parents=True, exist_ok=True)
    link = tmp_path / CLI
    if not link.exists():
        link.symlink_to(cli.path)
    return tmp_path


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


class StdoutLines:
    """The lines a process prints on its (text) stdout, read by a thread: a
    non-blocking read of a text pipe with nothing in it raises TypeError
    instead of returning None, so polling one races the process."""

    def __init__(self, p: subprocess.Popen):
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(p.stdout), daemon=True)
        self.reader.start()

    def wait(self, n: int, timeout: float = 10) -> list[str]:
        """The lines so far once there are n, stdout closed or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < n and self.reader.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.lines)


def test_readme_examples_work_as_written(broker, cli, tmp_path):
    commands = block("examples")
    assert commands == EXPECTED_COMMANDS, "README examples changed: update this test"
    root = repo_like(tmp_path, cli)
    env = clean_env({"WSBROKER_URL": broker.ws_url})

    def shell(cmd, background=False):
        # A background subscriber is exec'd so that SIGINT reaches it, as Ctrl-C would.
        return ["bash", "-c", ("exec " if background else "") + cmd.replace(DEFAULT_URL, broker.ws_url)]

    def run(cmd):
        r = subprocess.run(shell(cmd), cwd=root, env=env, capture_output=True, text=True, timeout=20)
        assert_no_sanitizer(r.stderr, cmd)
        return r

    procs = []
    try:
        sub_all = subprocess.Popen(shell(commands[0], True), cwd=root, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(sub_all)
        wait_subscriptions(broker.port, 2)
        sub_one = subprocess.Popen(shell(commands[1], True), cwd=root, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
        got = StdoutLines(sub_all).wait(len(expected))
        assert "".join(got).splitlines() == expected
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
TOP_CLI = CLI
DEV_CERT = "build/dev-cert/cert.pem"  # `make dev-cert`
TOP_EXPECTED = [
    "build/clients/c/wsbroker-cli sub 'demo.>'",
    "build/clients/c/wsbroker-cli pub demo.hello '{\"text\":\"hi\"}'",
    "printf '%s\\n' 1 2 3 | build/clients/c/wsbroker-cli pub demo.count -",
    f"build/clients/c/wsbroker-cli --url wss://127.0.0.1:8443/ws --cafile {DEV_CERT} sub 'demo.>'",
]


def make(*args, cwd=REPO) -> subprocess.CompletedProcess:
    r = subprocess.run(["make", "--no-print-directory", "-C", str(cwd), *args],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r
    return r


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
    build/clients/c/wsbroker-cli is the CLI under test and build/dev-cert/ the
    pair `make dev-cert` makes, served by the TLS broker as `make run TLS=1`
    would. The default URL (port 8080) and the TLS example's port 8443 are
    pointed at brokers on free ports, nothing else changes."""
    commands = top_readme_cli_block()
    assert commands == TOP_EXPECTED, "README.md's CLI examples changed: update this test"
    repo_like(tmp_path, cli)
    make("dev-cert", f"DEV_CERT_DIR={tmp_path / 'build' / 'dev-cert'}")
    cert, key = tmp_path / DEV_CERT, tmp_path / "build" / "dev-cert" / "key.pem"
    plain = broker_factory(name="plain")
    tls = broker_factory("--tls-cert", str(cert), "--tls-key", str(key),
                         "--tls-port", "0", "--tls-port-file", str(tmp_path / "wss.port"), name="tls")
    tls_port = int((tmp_path / "wss.port").read_text())
    env = clean_env({"WSBROKER_URL": plain.ws_url})

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
        out = StdoutLines(p)
        out.wait(lines)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
        out.reader.join(timeout=10)
        err = p.stderr.read()
        assert p.returncode == 0, err
        assert_no_sanitizer(err, cmd)
        return "".join(out.lines)

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
                                                     f"--cafile {DEV_CERT}")),
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20)
        assert (r.returncode, r.stderr) == (0, ""), r
        assert stop(tls_sub, commands[3], 1) == '{"topic":"demo.hello","seq":1,"data":{"text":"hi"}}\n'
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.communicate(timeout=10)


def test_make_dev_cert_is_for_127_0_0_1_and_localhost_and_make_run_tls_serves_it(tmp_path):
    """The pair README's TLS examples use: `make dev-cert` writes it once (a
    second run keeps it), names 127.0.0.1, ::1 and localhost, and
    `make run TLS=1` passes exactly those files to the broker."""
    out = tmp_path / "dev-cert"
    make("dev-cert", f"DEV_CERT_DIR={out}")
    first = (out / "cert.pem").read_bytes()
    assert (out / "key.pem").stat().st_size > 0
    make("dev-cert", f"DEV_CERT_DIR={out}")
    assert (out / "cert.pem").read_bytes() == first, "make dev-cert replaced an existing pair"
    import ssl
    sans = ssl._ssl._test_decode_cert(str(out / "cert.pem"))["subjectAltName"]
    assert {("IP Address", "127.0.0.1"), ("DNS", "localhost")} <= set(sans), sans
    dry = make("-n", "run", "TLS=1").stdout
    assert f"--tls-cert {DEV_CERT} --tls-key build/dev-cert/key.pem" in dry, dry[-2000:]


def test_one_cli_path_in_every_doc_and_make_run_builds_it(cli):
    """Every command in the docs calls the CLI by the path the build gives it,
    relative to the repository root; `make run` builds it."""
    assert Path(cli.path).as_posix().endswith("/" + CLI.split("/", 1)[1]), cli.path
    docs = [REPO / "README.md", REPO / "clients" / "c" / "README.md", REPO / "SECURITY.md",
            *sorted((REPO / "docs").glob("*.md"))]
    for doc in docs:
        for m in re.finditer(r"```sh\n(.*?)```", doc.read_text(), re.S):
            for line in m.group(1).splitlines():
                code = re.sub(r"#.*$", "", line)
                for use in re.finditer(r"(\S*)wsbroker-cli\b", code):
                    assert use.group(0) == CLI, f"{doc.name}: {line.strip()!r} calls {use.group(0)!r}, not {CLI}"
    makefile = (REPO / "Makefile").read_text()
    targets = re.search(r"^RUN_TARGETS\s*:=(.*)$", makefile, re.M)
    assert targets and "wsbroker-cli" in targets.group(1).split(), "make run does not build wsbroker-cli"


def test_cluster_recipe_writes_its_logs_to_a_temporary_folder():
    """README.md's 3-node recipe, as far as it can be checked without its fixed
    ports: every file it writes goes under $(mktemp -d), none into the repository."""
    section = TOP_README.read_text().split("### Run a 3-node cluster by hand\n", 1)[1]
    recipe = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    assert recipe.startswith("logs=$(mktemp -d)"), recipe[:80]
    unquoted = re.sub(r"'[^']*'", "''", recipe)  # 'demo.>' is no redirection
    writes = re.findall(r"(?<![<&\d])\d?>>?\s*(\"?[^\s&;|)]+)", unquoted)
    assert writes, "the recipe writes no log"
    for target in writes:
        assert target.startswith('"$logs/') or target in ("/dev/null", "&1", "&2"), target
    assert "--dir \"$logs\"" in recipe and "--logfile \"$logs/" in recipe, "redis-server writes in the cwd"
    assert CLI in recipe
