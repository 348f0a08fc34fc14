#!/usr/bin/env python3
"""The blockchain example's backend: serves the explorer page, signs readers
in (read-only tokens) and simulates a chain with the Python client: a block
every CHAIN_BLOCK_MS (default 2000) ms, deterministic (block N's
transactions come from a generator seeded with N), each block published as

- `chain.tx.<from>.<to>`, one message per transaction, then
- `chain.block` (height, hash, parent, transaction count), into the stream
  `chain.>`: one log, one seq, so an explorer that reconnects gets every
  block and transaction it missed, once and in order, or a `gap` notice
  naming what the log no longer holds;
- `chain.head`, the head of the chain as a last value (history 1)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import wsbroker  # noqa: E402

BLOCK_MS = int(os.environ.get("CHAIN_BLOCK_MS", "2000"))
# Eight accounts; an address is a topic token (hex), so `chain.tx.<addr>.*`
# is everything an account sent and `chain.tx.*.<addr>` all it received.
ADDRESSES = ["0x" + hashlib.sha256(n.encode()).hexdigest()[:10]
             for n in ("ada", "bob", "cyd", "dee", "eve", "fay", "gus", "hal")]
GENESIS = "0" * 64


def grants(user: str, query: dict) -> dict:
    return {"subscribe": ["chain.>"], "publish": []}


def make_block(height: int, parent: str) -> dict:
    rng = random.Random(height)
    txs = []
    for i in range(rng.randint(2, 6)):
        src, dst = rng.sample(ADDRESSES, 2)
        amount = round(rng.uniform(0.01, 25), 4)
        tid = hashlib.sha256(f"{height}:{i}:{src}:{dst}:{amount}".encode()).hexdigest()[:16]
        txs.append({"id": tid, "from": src, "to": dst, "amount": amount, "height": height, "index": i})
    body = json.dumps({"parent": parent, "height": height, "txs": [t["id"] for t in txs]}, sort_keys=True)
    return {"height": height, "hash": hashlib.sha256(body.encode()).hexdigest(), "parent": parent,
            "txs": txs, "ts": int(time.time() * 1000)}


async def chain(args, tip: dict) -> None:
    """Mines on from `tip` ({"height", "parent"}: kept across restarts of this loop)."""
    secret = devkit.secret_of(args.config)
    token = lambda: devkit.mint(secret, "miner", subscribe=[], publish=["chain.>"])  # noqa: E731
    async with wsbroker.connect(args.broker_ws, get_token=token) as client:
        next_at = time.monotonic()
        while True:
            block = make_block(tip["height"] + 1, tip["parent"])
            for tx in block["txs"]:
                await client.publish(f"chain.tx.{tx['from']}.{tx['to']}", tx)
            summary = {k: block[k] for k in ("height", "hash", "parent", "ts")}
            summary["tx_count"] = len(block["txs"])
            summary["volume"] = round(sum(t["amount"] for t in block["txs"]), 4)
            summary["accounts"] = sorted({a for t in block["txs"] for a in (t["from"], t["to"])})
            await client.publish("chain.block", summary)
            await client.publish("chain.head", summary)
            tip.update(height=block["height"], parent=block["hash"])
            next_at += BLOCK_MS / 1000
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # the chain's pace


def run_chain(args) -> None:
    tip = {"height": 0, "parent": GENESIS}
    while True:
        try:
            asyncio.run(chain(args, tip))
        except Exception as exc:  # the broker went away: start again from the tip
            print(f"blockchain simulator: {exc}", file=sys.stderr)
            time.sleep(1)


if __name__ == "__main__":
    a = devkit.parse_args("blockchain example backend")
    threading.Thread(target=run_chain, args=(a,), daemon=True).start()
    devkit.serve(HERE, a, grants)
