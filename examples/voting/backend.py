#!/usr/bin/env python3
"""The voting example's backend (Flask, Debian's python3-flask): the ballot
box. A vote is POST /api/vote with the voter's token; the voter is the
token's `sub`, so each user votes once whatever the number of tabs or
retries. Each accepted vote publishes the new tally on the stream
`poll.<id>.tally` with the Python client's synchronous HTTP publisher
(an API key limited to poll.>), which is all a WSGI app needs; the pages
only subscribe."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import wsbroker  # noqa: E402
from flask import Flask, Response, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

POLL = {
    "id": "next",
    "question": "What should the team build next?",
    "choices": {"mobile": "A mobile app", "search": "Full-text search", "dark": "A dark mode"},
}

args = devkit.parse_args("voting example backend (Flask)")
SECRET = devkit.secret_of(args.config)
API_KEY = json.loads(args.config.read_text())["api_keys"][0].split(":", 1)[0]
publisher = wsbroker.HttpPublisher(args.broker_http, API_KEY)

app = Flask(__name__)
lock = threading.Lock()
votes: Dict[str, str] = {}  # user (token sub) -> choice


def tally() -> Dict[str, Any]:
    counts = {c: 0 for c in POLL["choices"]}
    for choice in votes.values():
        counts[choice] += 1
    return {"poll": POLL["id"], "counts": counts, "total": len(votes)}


def voter() -> Optional[str]:
    auth = request.headers.get("Authorization", "")
    claims = devkit.verify(SECRET, auth.removeprefix("Bearer "))
    return claims.get("sub") if claims and isinstance(claims.get("sub"), str) else None


@app.get("/api/poll")
def poll() -> Response:
    user = voter()
    if user is None:
        return jsonify(error="sign in first"), 401
    with lock:
        return jsonify(**POLL, my_vote=votes.get(user))


@app.post("/api/vote")
def vote() -> Response:
    user = voter()
    if user is None:
        return jsonify(error="sign in first"), 401
    body = request.get_json(silent=True) or {}
    choice = body.get("choice")
    if choice not in POLL["choices"]:
        return jsonify(error=f"choose one of {', '.join(POLL['choices'])}"), 400
    with lock:
        if user in votes:
            return jsonify(error="you have already voted", my_vote=votes[user]), 409
        votes[user] = choice
        # Under the lock: tallies reach the stream in the order they were counted.
        publisher.publish(f"poll.{POLL['id']}.tally", tally())
    return jsonify(my_vote=choice)


@app.get("/config.json")
def config() -> Response:
    return jsonify(ws=args.broker_ws, http=args.broker_http)


@app.get("/api/token")
def token() -> Response:
    user = request.args.get("user", "")
    if not devkit.valid_name(user):
        return jsonify(error="user: 1 to 32 letters, digits, . _ -"), 400
    return jsonify(user=user, token=devkit.mint(SECRET, user, subscribe=["poll.>"], publish=[]))


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def page(path: str) -> Response:
    found = devkit.static_file(HERE, "/" + path)
    if found is None:
        return Response("not found\n", 404, mimetype="text/plain")
    return Response(found[0], mimetype=found[1], headers={"Cache-Control": "no-store"})


if __name__ == "__main__":
    with lock:  # the stream starts with an empty tally, so a first page shows the choices at 0
        publisher.publish(f"poll.{POLL['id']}.tally", tally())
    server = make_server(args.host, args.port, app, threaded=True)
    devkit.write_port_file(args.port_file, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
