#!/usr/bin/env python3
"""The feeds example's backend: serves the page, signs readers in (read-only
tokens) and runs three feeds into the broker at a steady rate:

- a market: six instruments, a price each 5 times a second, published with
  the Python client over one WebSocket (`prices.<symbol>`);
- sports: two matches; a goal, a card or a corner every few seconds, as an
  event on `sports.events` (history: the list a late page gets) and the score
  of the match on `sports.score.<match>` (last value);
- IoT: a gateway posting sensor readings over HTTP (`POST /api/publish`
  with its API key, `wsbroker.publish_http`), one per sensor per second.

The page never asks the backend for data: the broker keeps the last value
of each instrument, sensor and score, and the last 50 sports events."""
from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import wsbroker  # noqa: E402

INSTRUMENTS = {"AAPL": 191.20, "MSFT": 415.50, "NVDA": 121.80, "BTC-USD": 67250.0, "ETH-USD": 3480.0, "EUR-USD": 1.0842}
PRICE_HZ = 5
SENSORS = {  # id -> (unit, base, swing)
    "greenhouse-temp": ("°C", 24.0, 1.5),
    "greenhouse-humidity": ("%", 61.0, 4.0),
    "server-room-temp": ("°C", 21.0, 0.8),
    "pump-pressure": ("bar", 3.2, 0.3),
}
MATCHES = {
    "m1": {"home": "Harbour FC", "away": "City Rovers"},
    "m2": {"home": "Northside", "away": "Athletic 1902"},
}
EVENT_SECONDS = 4


def grants(user: str, query: dict) -> dict:
    return {"subscribe": ["prices.*", "sensors.*", "sports.>"], "publish": []}


async def market_and_sports(args) -> None:
    """Prices and sports over one connection of the Python client."""
    secret = devkit.secret_of(args.config)
    token = lambda: devkit.mint(secret, "feeds", subscribe=[], publish=["prices.*", "sports.>"])  # noqa: E731
    rng = random.Random(7)  # a deterministic market: the same run every start
    prices = dict(INSTRUMENTS)
    scores = {m: {**teams, "match": m, "home_goals": 0, "away_goals": 0, "minute": 0} for m, teams in MATCHES.items()}
    kinds = ["corner", "yellow card", "goal", "corner", "shot on target", "goal", "substitution"]
    async with wsbroker.connect(args.broker_ws, get_token=token) as client:
        number = 0
        for s in scores.values():
            await client.publish(f"sports.score.{s['match']}", s)
        number += 1
        await client.publish("sports.events", {"n": number, "match": "m1", "kind": "kick-off", "minute": 0,
                                               "text": f"Kick-off: {MATCHES['m1']['home']} v {MATCHES['m1']['away']}",
                                               "ts": int(time.time() * 1000)})
        tick = 0
        while True:
            for sym, p in prices.items():
                p *= math.exp(rng.gauss(0, 0.0008))
                prices[sym] = p
                digits = 4 if p < 10 else 2
                await client.publish(f"prices.{sym}", {"symbol": sym, "price": round(p, digits),
                                                       "open": INSTRUMENTS[sym], "ts": int(time.time() * 1000)}, ack=False)
            tick += 1
            if tick % (EVENT_SECONDS * PRICE_HZ) == 0:
                match = rng.choice(list(scores))
                s = scores[match]
                s["minute"] = min(90, s["minute"] + rng.randint(3, 9))
                kind = rng.choice(kinds)
                side = rng.choice(["home", "away"])
                team = s[side]
                if kind == "goal":
                    s[f"{side}_goals"] += 1
                    await client.publish(f"sports.score.{match}", s)
                number += 1
                await client.publish("sports.events", {"n": number, "match": match, "kind": kind, "minute": s["minute"],
                                                       "text": f"{kind.capitalize()}, {team}", "ts": int(time.time() * 1000)})
                if s["minute"] >= 90:  # full time: the next match between them kicks off
                    s.update(home_goals=0, away_goals=0, minute=0)
                    await client.publish(f"sports.score.{match}", s)
            await asyncio.sleep(1 / PRICE_HZ)  # the feed's pace, not a synchronisation


def iot_gateway(args) -> None:
    """Sensor readings over HTTP with the gateway's API key, once a second each."""
    key = json.loads(args.config.read_text())["api_keys"][0].split(":")[0]
    publisher = wsbroker.HttpPublisher(args.broker_http, key)
    t0 = time.monotonic()
    while True:
        t = time.monotonic() - t0
        try:
            for i, (sensor, (unit, base, swing)) in enumerate(SENSORS.items()):
                value = base + swing * math.sin(t / (20 + 7 * i) + i)
                publisher.publish(f"sensors.{sensor}", {"sensor": sensor, "value": round(value, 2), "unit": unit,
                                                         "ts": int(time.time() * 1000)})
        except (OSError, wsbroker.HttpError) as exc:
            print(f"feeds gateway: {exc}", file=sys.stderr)
        time.sleep(1)  # the gateway's pace


def forever(target, args) -> None:
    while True:
        try:
            if asyncio.iscoroutinefunction(target):
                asyncio.run(target(args))
            else:
                target(args)
        except Exception as exc:  # the broker went away: start again, the client reconnects
            print(f"feeds: {exc}", file=sys.stderr)
            time.sleep(1)


if __name__ == "__main__":
    a = devkit.parse_args("feeds example backend")
    threading.Thread(target=forever, args=(market_and_sports, a), daemon=True).start()
    threading.Thread(target=forever, args=(iot_gateway, a), daemon=True).start()
    devkit.serve(HERE, a, grants)
