#!/usr/bin/env python3
"""The GPS example's backend: serves the map page, signs users in (a user may
read the whole fleet and publish only its own vehicle, fleet.vehicle.<name>)
and drives a few simulated buses around a loop, publishing each one's
position five times a second with the Python client. The map never asks the
backend for positions: the broker keeps the last one of every vehicle."""
from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import wsbroker  # noqa: E402

CENTER = (52.520, 13.405)
BUSES = ["bus-1", "bus-2", "bus-3"]
HZ = 5


def grants(user: str, query: dict) -> dict:
    return {"subscribe": ["fleet.>"], "publish": [f"fleet.vehicle.{user}"]}


async def simulate(args) -> None:
    secret = devkit.secret_of(args.config)
    token = lambda: devkit.mint(secret, "simulator", subscribe=[], publish=["fleet.vehicle.>"])  # noqa: E731
    async with wsbroker.connect(args.broker_ws, get_token=token) as client:
        t0 = time.monotonic()
        while True:
            t = time.monotonic() - t0
            for i, bus in enumerate(BUSES):
                # Each bus on its own ellipse around the centre, at its own pace.
                a = t * (0.05 + 0.02 * i) + i * 2.1
                lat = CENTER[0] + (0.008 + 0.003 * i) * math.sin(a)
                lon = CENTER[1] + (0.014 + 0.004 * i) * math.cos(a)
                heading = (math.degrees(math.atan2(math.cos(a), -math.sin(a))) + 360) % 360
                await client.publish(f"fleet.vehicle.{bus}", {
                    "lat": round(lat, 6), "lon": round(lon, 6), "heading": round(heading),
                    "speed": 30 + 5 * i, "ts": int(time.time() * 1000)}, ack=False)
            await asyncio.sleep(1 / HZ)  # the simulation's pace, not a synchronisation


def run_simulator(args) -> None:
    while True:
        try:
            asyncio.run(simulate(args))
        except Exception as exc:  # the broker went away: start again, the client reconnects
            print(f"gps simulator: {exc}", file=sys.stderr)
            time.sleep(1)


if __name__ == "__main__":
    a = devkit.parse_args("GPS example backend")
    threading.Thread(target=run_simulator, args=(a,), daemon=True).start()
    devkit.serve(HERE, a, grants)
