"""The docker-compose topology without Docker (issue 9): nginx running
deploy/nginx.conf in front of three broker nodes federated through a real
redis-server. Every client here talks to nginx only.

- the demo page, /healthz and /api/publish answer through nginx;
- subscribers spread over the nodes receive what publishers on the other
  nodes send;
- killing the node a JS client (clients/js) is on: the client reconnects
  through nginx to a survivor, subscribes again by itself and receives what
  is published after the kill.
"""
from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path


from helpers import connect, publish, run, wait_for
from through_proxy import pubsub_across_nodes

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node") or "/usr/bin/node"


def http(url: str, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def test_http_through_nginx(topology):
    ngx, nodes = topology
    status, page = http(ngx.url + "/")
    assert status == 200 and b"<html" in page.lower(), page[:200]
    status, body = http(ngx.url + "/healthz")
    health = json.loads(body)
    assert status == 200 and health["redis"] == "ok"
    assert health["node_id"] in {n.name for n in nodes}
    status, body = http(ngx.url + "/api/publish", {"topic": "deploy.http", "data": 1})
    assert status == 200 and "seq" in json.loads(body)


def test_pubsub_across_nodes_through_nginx(topology):
    ngx, nodes = topology
    seen = run(pubsub_across_nodes(ngx.ws_url, "deploy.chat"), 60)
    assert set(seen["subscribers"]) <= {n.name for n in nodes}


class JsFollower:
    """tests/deploy/js_follower.mjs under Node: its stdout lines as dicts."""

    def __init__(self, url: str, pattern: str, workdir: Path):
        self.err_path = workdir / "js_follower.stderr"
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([NODE, str(HERE / "js_follower.mjs"), url, pattern],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def next(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"JS client: timed out waiting for {what}; saw {self.seen[-20:]}")
            try:
                ev = self.events.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"JS client exited with {self.proc.returncode}; saw {self.seen}; stderr "
                        f"(is clients/js/node_modules there? make deps-npm):\n"
                        f"{self.err_path.read_text(errors='replace')[-2000:]}")
                continue
            self.seen.append(ev)
            if pred(ev):
                return ev

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the script closes its client and exits
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.err.close()


def test_js_client_moves_to_a_survivor_when_its_node_dies(topology, redis_server, tmp_path):
    ngx, nodes = topology
    by_name = {n.name: n for n in nodes}
    js = JsFollower(ngx.ws_url, "deploy.follow.>", tmp_path)
    try:
        first = js.next(lambda e: e["ev"] == "open", 15.0, "the first welcome")["node"]
        js.next(lambda e: e["ev"] == "subscribed", 10.0, "the subscribe ack")
        wait_for(lambda: int(redis_server.client().pubsub_numpat()) >= 1, 10.0, 0.02,
                 "the pattern subscribed in Redis")
        status, _ = http(ngx.url + "/api/publish", {"topic": "deploy.follow.a", "data": "before"})
        assert status == 200
        js.next(lambda e: e["ev"] == "message" and e["data"] == "before", 10.0, "the message before the kill")

        victim = by_name[first]
        victim.kill()  # SIGKILL: no close frame, the connection just breaks
        victim.killed = True
        js.next(lambda e: e["ev"] == "disconnect", 10.0, "the disconnect")
        again = js.next(lambda e: e["ev"] == "open", 15.0, "the welcome after reconnecting")["node"]
        assert again != first and again in by_name, (first, again)
        js.next(lambda e: e["ev"] == "subscribed", 10.0, "the subscription restored")

        # Published through nginx after the kill (nginx skips the dead node),
        # from the other survivor when possible: the subscription survived the move.
        async def after():
            deadline = time.monotonic() + 15.0
            n = 0
            while True:
                ws = await connect(ngx.ws_url)
                try:
                    n += 1
                    await publish(ws, "deploy.follow.b", {"after": n, "from": ws.welcome["node_id"]})
                finally:
                    await ws.close()
                try:
                    return js.next(lambda e: e["ev"] == "message" and isinstance(e["data"], dict)
                                   and e["data"].get("after") == n, 1.0, "a message after the kill")
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise

        got = run(after(), 30)
        assert got["data"]["from"] != first
        for n in nodes:
            if n is not victim:
                assert n.health()["status"] == "ok"
    finally:
        js.stop()
