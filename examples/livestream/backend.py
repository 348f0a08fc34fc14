#!/usr/bin/env python3
"""The live-stream chat example's backend: serves the page and signs viewers
in (read and write the stream's chat). The crowd control is the broker's:
two messages a second per user (a burst of 5), whatever the number of tabs."""
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
import devkit  # noqa: E402


def grants(user: str, query: dict) -> dict:
    return {"subscribe": ["live.*.chat"], "publish": ["live.*.chat"]}


if __name__ == "__main__":
    devkit.serve(Path(__file__).resolve().parent, devkit.parse_args("live-stream chat example backend"), grants)
