#!/usr/bin/env python3
"""The notifications example's backend (Flask): the only sender. POST
/api/notify {to, text} with the sender's token checks the request and
publishes {from, text, ts} to the recipient's own topic, notify.<user>,
with the Python client's synchronous HTTP publisher (an API key limited to
notify.>). Each user's token may subscribe to its own topic only, so a
notification reaches its recipient and nobody else; the topic keeps the last
100 for a day, so a user who was away gets what they missed."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import wsbroker  # noqa: E402
from flask import Flask, Response, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

args = devkit.parse_args("notifications example backend (Flask)")
SECRET = devkit.secret_of(args.config)
API_KEY = json.loads(args.config.read_text())["api_keys"][0].split(":", 1)[0]
publisher = wsbroker.HttpPublisher(args.broker_http, API_KEY)
app = Flask(__name__)


@app.post("/api/notify")
def notify() -> Response:
    claims = devkit.verify(SECRET, request.headers.get("Authorization", "").removeprefix("Bearer "))
    if not claims:
        return jsonify(error="sign in first"), 401
    body = request.get_json(silent=True) or {}
    to, text = body.get("to"), body.get("text")
    if not isinstance(to, str) or not devkit.valid_name(to):
        return jsonify(error="to: a user name"), 400
    if not isinstance(text, str) or not 1 <= len(text.strip()) <= 280:
        return jsonify(error="text: 1 to 280 characters"), 400
    seq = publisher.publish(f"notify.{to}", {"from": claims["sub"], "text": text.strip(),
                                              "ts": int(time.time() * 1000)})
    return jsonify(seq=seq)


@app.get("/config.json")
def config() -> Response:
    return jsonify(ws=args.broker_ws, http=args.broker_http)


@app.get("/api/token")
def token() -> Response:
    user = request.args.get("user", "")
    if not devkit.valid_name(user):
        return jsonify(error="user: 1 to 32 letters, digits, . _ -"), 400
    # Read your own notifications; send only through the backend.
    return jsonify(user=user, token=devkit.mint(SECRET, user, subscribe=[f"notify.{user}"], publish=[]))


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
