#!/usr/bin/env python3
"""The WebRTC signalling example's backend: serves the page and signs users
in. Each user's token may read one inbox, `signal.<user>`, and the lobby;
it may send to any inbox. Offers, answers and ICE candidates travel through
the broker; the call itself goes browser to browser."""
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
import devkit  # noqa: E402


def grants(user: str, query: dict) -> dict:
    return {"subscribe": [f"signal.{user}", "signal.lobby"], "publish": ["signal.*"]}


if __name__ == "__main__":
    devkit.serve(Path(__file__).resolve().parent, devkit.parse_args("WebRTC signalling example backend"), grants)
