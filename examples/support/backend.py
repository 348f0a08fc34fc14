#!/usr/bin/env python3
"""The customer-support example's backend (Flask): routes each new
conversation to the online agent with the fewest, and serves the pages.

- Agents are online while their page subscribes to `support.agents` (a
  presence topic); the router asks the broker who is there with
  GET /api/presence (the Python client's HttpPublisher.presence).
- A customer's conversation is `support.conv.<customer>`; the customer's
  token may use that topic only. The chosen agent is told on its own queue,
  `support.assign.<agent>` (history: an agent who reloads gets its queue back).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import wsbroker  # noqa: E402
from flask import Flask, Response, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

args = devkit.parse_args("customer support example backend (Flask)")
SECRET = devkit.secret_of(args.config)
API_KEY = json.loads(args.config.read_text())["api_keys"][0].split(":", 1)[0]
broker = wsbroker.HttpPublisher(args.broker_http, API_KEY)
app = Flask(__name__)
lock = threading.Lock()
load: Dict[str, int] = {}  # agent -> conversations routed to it
routed: Dict[str, str] = {}  # customer -> agent


def claims_of() -> Optional[dict]:
    return devkit.verify(SECRET, request.headers.get("Authorization", "").removeprefix("Bearer "))


@app.post("/api/conversations")
def start_conversation() -> Response:
    claims = claims_of()
    if not claims or claims.get("role") != "customer":
        return jsonify(error="sign in as a customer"), 401
    customer = claims["sub"]
    with lock:
        if customer in routed:
            return jsonify(agent=routed[customer], conv=f"support.conv.{customer}")
        online = sorted({m.user for m in broker.presence("support.agents").members if m.user})
        if not online:
            return jsonify(agent=None, conv=None)
        agent = min(online, key=lambda a: (load.get(a, 0), a))
        load[agent] = load.get(agent, 0) + 1
        routed[customer] = agent
        broker.publish(f"support.assign.{agent}", {"customer": customer, "conv": f"support.conv.{customer}",
                                                    "ts": int(time.time() * 1000)})
    return jsonify(agent=agent, conv=f"support.conv.{customer}")


@app.get("/config.json")
def config() -> Response:
    return jsonify(ws=args.broker_ws, http=args.broker_http)


@app.get("/api/token")
def token() -> Response:
    user = request.args.get("user", "")
    role = request.args.get("role", "customer")
    if not devkit.valid_name(user) or role not in ("customer", "agent"):
        return jsonify(error="user: 1 to 32 letters, digits, . _ -; role: customer or agent"), 400
    if role == "agent":
        grants = {"subscribe": ["support.agents", f"support.assign.{user}", "support.conv.*"],
                  "publish": ["support.conv.*"]}
    else:
        grants = {"subscribe": [f"support.conv.{user}"], "publish": [f"support.conv.{user}"]}
    return jsonify(user=user, token=devkit.mint(SECRET, user, role=role, **grants))


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def page(path: str) -> Response:
    found = devkit.static_file(HERE, "/" + path)
    if found is None:
        return Response("not found\n", 404, mimetype="text/plain")
    return Response(found[0], mimetype=found[1], headers={"Cache-Control": "no-store"})


if __name__ == "__main__":
    server = make_server(args.host, args.port, app, threaded=True)
    devkit.write_port_file(args.port_file, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
