#!/usr/bin/env python3
"""The chat example's backend: serves the page and signs users in (a dev
token per name, allowed to read and write the chat rooms). The chat itself
goes browser to broker: this process never sees a message."""
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
import devkit  # noqa: E402


def grants(user: str, query: dict) -> dict:
    # Rooms and their typing topics; nothing else of the broker.
    return {"subscribe": ["chat.>"], "publish": ["chat.>"]}


if __name__ == "__main__":
    devkit.serve(Path(__file__).resolve().parent, devkit.parse_args("chat example backend"), grants)
