#!/usr/bin/env python3
"""The whiteboard example's backend: serves the page and signs users in (draw
on the boards and show their cursor). The drawing itself is the broker's
history of board.<id>.strokes: this process keeps nothing."""
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
import devkit  # noqa: E402


def grants(user: str, query: dict) -> dict:
    return {"subscribe": ["board.>"], "publish": ["board.>"]}


if __name__ == "__main__":
    devkit.serve(Path(__file__).resolve().parent, devkit.parse_args("whiteboard example backend"), grants)
