#!/usr/bin/env python3
"""The quiz example's backend: serves the page and signs people in. The
host (the name "host") may publish questions and scores and read answers;
players read questions and scores and may only send answers, which other
players therefore never see. The game runs in the host's page."""
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
import devkit  # noqa: E402

HOST = "host"


def grants(user: str, query: dict) -> dict:
    if user == HOST:
        return {"subscribe": ["quiz.*.question", "quiz.*.answers", "quiz.*.scores"],
                "publish": ["quiz.*.question", "quiz.*.scores"]}
    return {"subscribe": ["quiz.*.question", "quiz.*.scores"], "publish": ["quiz.*.answers"]}


if __name__ == "__main__":
    devkit.serve(Path(__file__).resolve().parent, devkit.parse_args("quiz example backend"), grants)
