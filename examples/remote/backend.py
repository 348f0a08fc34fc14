#!/usr/bin/env python3
"""The remote-control example's backend: serves the operator console
(index.html) and the device simulator (device.html), and signs both in with
the rights of their role. Commands go operator -> broker -> device and back
(request/reply); this process never sees them."""
from pathlib import Path
import sys
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
import devkit  # noqa: E402


def grants(user: str, query: dict) -> Optional[dict]:
    role = query.get("role", "operator")
    if role == "device":
        # A device hears only its own commands and reports only its own state.
        return {"subscribe": [f"device.{user}.cmd"], "publish": [f"device.{user}.state"]}
    if role == "operator":
        # Operators see every device's state and may command any device.
        return {"subscribe": ["device.*.state"], "publish": ["device.*.cmd"]}
    return None


if __name__ == "__main__":
    devkit.serve(Path(__file__).resolve().parent, devkit.parse_args("remote control example backend"), grants)
