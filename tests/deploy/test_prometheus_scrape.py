"""A real Prometheus (Debian's binary) scraping three federated nodes with
deploy/prometheus/wsbroker.rules.yml loaded: every target comes up, every
rule evaluates without error, the recording rules have the cluster's values,
a healthy cluster fires no alert, and a node refusing connections over its
max_connections makes WsbrokerConnectionsRejected fire for that node only.

Prometheus runs on 127.0.0.1 with a generated config (1 s scrape and rule
evaluation), its data in the test's temp dir, stopped by its PID. Every
wait is bounded and driven by what the HTTP API reports.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from helpers import wait_for
from test_prometheus_names import dashboard_expressions

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "wsbroker.rules.yml"
PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
MAX_CONNECTIONS = 16
WAIT = 60.0  # generous: Prometheus starts slowly on a loaded machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str]):
        self.workdir = workdir
        self.port = free_port()
        self.conf = workdir / "prometheus.yml"
        # JSON is YAML: no YAML writer needed.
        self.conf.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "wsbroker",
                                "static_configs": [{"targets": targets}]}],
        }, indent=2))
        self.proc = None

    def log(self) -> str:
        p = self.workdir / "prometheus.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self) -> "Prometheus":
        check = subprocess.run(["promtool", "check", "config", str(self.conf)],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, f"promtool refused the config:\n{check.stdout}{check.stderr}"
        out = open(self.workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS_BIN, f"--config.file={self.conf}",
             f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n"
                                     f"{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, WAIT, 0.05, "prometheus to be ready")
        return self

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def prometheus(tmp_path, cluster):
    if not Path(PROMETHEUS_BIN).exists() or shutil.which("promtool") is None:
        pytest.fail("prometheus is not installed: run `make deps` (Debian package prometheus)")
    nodes = cluster(3, "--max-connections", str(MAX_CONNECTIONS))
    targets = {f"127.0.0.1:{n.port}": n for n in nodes}
    prom = Prometheus(tmp_path, list(targets)).start()
    yield prom, targets
    prom.stop()


def refuse_one_connection(port: int) -> None:
    """Opens connections to the node until it refuses one over max_connections
    (it answers and closes it), then closes them all."""
    socks = []
    try:
        for _ in range(MAX_CONNECTIONS + 4):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))

        def one_closed_by_the_node():
            ready, _, _ = select.select(socks, [], [], 0.05)
            return bool(ready)

        wait_for(one_closed_by_the_node, 10.0, 0.0, "the node to refuse a connection")
    finally:
        for s in socks:
            s.close()


def test_prometheus_scrapes_three_nodes_and_evaluates_the_rules(prometheus):
    prom, targets = prometheus

    def all_up():
        active = prom.api("targets")["activeTargets"]
        return len(active) == 3 and all(t["health"] == "up" for t in active)

    wait_for(all_up, WAIT, 0.1, "three targets up")
    assert {t["labels"]["instance"] for t in prom.api("targets")["activeTargets"]} == set(targets)

    # Every rule of both groups has been evaluated, none with an error.
    def rules():
        return {g["name"]: g["rules"] for g in prom.api("rules")["groups"]}

    def all_evaluated():
        g = rules()
        return (set(g) == {"wsbroker.recording", "wsbroker.alerts"}
                and all(r["health"] == "ok" for rs in g.values() for r in rs))

    wait_for(all_evaluated, WAIT, 0.1, "every rule evaluated")
    bad = [(r["name"], r.get("lastError")) for rs in rules().values() for r in rs
           if r.get("lastError")]
    assert not bad, bad

    # The recording rules see the three nodes.
    wait_for(lambda: len(prom.query("instance:wsbroker_connections:ratio_max")) == 3, WAIT, 0.1,
             "a connections ratio per node")
    for sample in prom.query("instance:wsbroker_connections:ratio_max"):
        assert 0 < float(sample["value"][1]) <= 1, sample
    (total,) = prom.query("job:wsbroker_connections:sum")
    assert total["metric"]["job"] == "wsbroker" and float(total["value"][1]) >= 3, total
    (redis,) = prom.query("job:wsbroker_redis_up:min")
    assert float(redis["value"][1]) == 1, redis
    ages = prom.query("wsbroker_worker_heartbeat_age_seconds")
    assert len(ages) == 3 * int(float(prom.query("wsbroker_workers")[0]["value"][1])), ages

    # Every query of the Grafana dashboard, with its variables filled in as
    # Grafana would, is accepted by this Prometheus and, once each node has
    # been scraped a few times (rates need two samples), returns data.
    def empty_panels():
        empty = []
        for where, expr in dashboard_expressions():
            q = expr.replace("$__rate_interval", "10s").replace("$instance", ".*")
            try:
                result = prom.query(q)
            except urllib.error.HTTPError as e:
                raise AssertionError(f"dashboard panel {where!r}: Prometheus refused {q!r}: "
                                     f"{e.read()[:500]!r}") from None
            if not result:
                empty.append(f"{where}: {q}")
        return empty

    last: list = []

    def all_have_data():
        last[:] = empty_panels()
        return not last

    try:
        wait_for(all_have_data, WAIT, 0.5, "every dashboard query to return data")
    except AssertionError:
        if not last:
            raise  # a query Prometheus refused
        raise AssertionError(f"dashboard queries without data: {last}") from None

    # A healthy cluster: every alert evaluated and inactive.
    alerts = rules()["wsbroker.alerts"]
    assert len(alerts) >= 9 and all(r["state"] == "inactive" for r in alerts), \
        [(r["name"], r["state"]) for r in alerts]

    # One node refuses a connection: its alert fires (no `for:`), the others' do not.
    victim = sorted(targets)[2]
    refuse_one_connection(targets[victim].port)

    def firing():
        return [a for a in prom.api("alerts")["alerts"]
                if a["labels"]["alertname"] == "WsbrokerConnectionsRejected"
                and a["state"] == "firing"]

    wait_for(firing, WAIT, 0.1, "WsbrokerConnectionsRejected to fire")
    assert [a["labels"]["instance"] for a in firing()] == [victim]
    assert firing()[0]["labels"]["severity"] == "warning"
