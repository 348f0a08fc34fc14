#!/usr/bin/env python3
"""The auction example's backend (FastAPI + uvicorn, Debian's python3-fastapi
and python3-uvicorn). It is the only judge of bids:

- bidders send a bid as a broker request to `bids.<lot>`; this process
  answers each one (accepted, or why not) and publishes every accepted bid to
  `auction.<lot>.bid`; the bidder is the broker's `from` stamp, not a claim;
- it opens lots (`auction.<lot>.open`) and closes them (`auction.<lot>.sold`
  or `auction.<lot>.unsold`), exactly once, when their time is up or when the
  seller brings the hammer down (POST /api/hammer, the seller's token);
- `auction.>` is a stream: a page that (re)connects replays the lot's
  history from it, so every bidder sees the same bids and the same winner.

The page, /config.json and /api/token (a dev sign-in) are served here too.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import uvicorn  # noqa: E402
import wsbroker  # noqa: E402
from fastapi import FastAPI, Header, HTTPException, Response  # noqa: E402

SELLER = "seller"
LOT_SECONDS = int(os.environ.get("AUCTION_LOT_SECONDS", "300"))
MIN_STEP = 5
LOTS = [
    ("Vintage analog synthesizer", 100),
    ("Signed first-edition novel", 40),
    ("Mid-century desk lamp", 25),
]

args = devkit.parse_args("auction example backend (FastAPI)")
SECRET = devkit.secret_of(args.config)
app = FastAPI(title="wsbroker auction example", docs_url=None, redoc_url=None)


class Auction:
    """One lot at a time; every change is published to the stream before it
    is acknowledged, under one lock, so the stream's order is the truth."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.client: Optional[wsbroker.Client] = None
        self.number = 0
        self.lot: Dict[str, Any] = {}
        self.timer: Optional[asyncio.TimerHandle] = None

    async def open_next(self) -> None:
        title, start = LOTS[self.number % len(LOTS)]
        self.number += 1
        lot_id = f"lot{int(time.time())}x{self.number}"
        self.lot = {"lot": lot_id, "title": title, "start": start, "seller": SELLER, "high": None,
                    "bidder": None, "open": True, "ends_at": int((time.time() + LOT_SECONDS) * 1000)}
        assert self.client is not None
        await self.client.publish(f"auction.{lot_id}.open", {
            k: self.lot[k] for k in ("lot", "title", "start", "seller", "ends_at")})
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(LOT_SECONDS, lambda: asyncio.ensure_future(self.close(lot_id)))

    async def close(self, lot_id: str) -> bool:
        """Closes the lot once; False when it is not the open lot."""
        async with self.lock:
            if self.lot.get("lot") != lot_id or not self.lot["open"]:
                return False
            self.lot["open"] = False
            if self.timer is not None:
                self.timer.cancel()
            assert self.client is not None
            if self.lot["bidder"] is None:
                await self.client.publish(f"auction.{lot_id}.unsold", {"lot": lot_id})
            else:
                await self.client.publish(f"auction.{lot_id}.sold", {
                    "lot": lot_id, "winner": self.lot["bidder"], "amount": self.lot["high"]})
            return True

    def judge(self, bidder: Optional[str], lot_id: str, data: Any) -> Optional[str]:
        """Why the bid is refused, or None when it is good."""
        if not bidder:
            return "sign in to bid"
        if lot_id != self.lot.get("lot") or not self.lot.get("open"):
            return "this lot is closed"
        if bidder == self.lot["seller"]:
            return "the seller cannot bid"
        amount = data.get("amount") if isinstance(data, dict) else None
        if not isinstance(amount, int) or isinstance(amount, bool):
            return "a bid is a whole amount"
        floor = self.lot["start"] if self.lot["high"] is None else self.lot["high"] + MIN_STEP
        if amount < floor:
            return f"the lowest bid now is {floor}"
        if bidder == self.lot["bidder"]:
            return "you are already the highest bidder"
        return None

    async def on_bid(self, msg: wsbroker.Message) -> None:
        lot_id = msg.topic.split(".", 1)[1]
        bidder = msg.from_.user if msg.from_ else None
        async with self.lock:
            reason = self.judge(bidder, lot_id, msg.data)
            if reason is None:
                self.lot["high"], self.lot["bidder"] = msg.data["amount"], bidder
                assert self.client is not None
                await self.client.publish(f"auction.{lot_id}.bid", {
                    "lot": lot_id, "bidder": bidder, "amount": msg.data["amount"], "ts": int(time.time() * 1000)})
        if msg.reply_to:
            assert self.client is not None
            await self.client.reply(msg, {"ok": reason is None, "reason": reason}, ack=False)


auction = Auction()


def auctioneer_token() -> str:
    return devkit.mint(SECRET, "auctioneer", subscribe=["bids.>"], publish=["auction.>"])


@app.on_event("startup")
async def startup() -> None:
    auction.client = await wsbroker.connect(args.broker_ws, get_token=auctioneer_token)
    await auction.client.subscribe("bids.*", auction.on_bid)
    await auction.open_next()
    devkit.write_port_file(args.port_file, SOCK.getsockname()[1])


@app.on_event("shutdown")
async def shutdown() -> None:
    if auction.client is not None:
        await auction.client.close()


def seller_of(authorization: Optional[str]) -> str:
    claims = devkit.verify(SECRET, (authorization or "").removeprefix("Bearer "))
    if claims is None:
        raise HTTPException(401, "sign in first")
    if claims.get("sub") != SELLER:
        raise HTTPException(403, f"only {SELLER} runs the auction")
    return SELLER


@app.post("/api/hammer")
async def hammer(authorization: Optional[str] = Header(None)) -> Dict[str, Any]:
    """The seller closes the open lot now."""
    seller_of(authorization)
    return {"closed": await auction.close(auction.lot.get("lot", ""))}


@app.post("/api/next")
async def next_lot(authorization: Optional[str] = Header(None)) -> Dict[str, Any]:
    """The seller opens the next lot (the open one, if any, is closed first)."""
    seller_of(authorization)
    await auction.close(auction.lot.get("lot", ""))
    async with auction.lock:
        await auction.open_next()
    return {"lot": auction.lot["lot"]}


@app.get("/config.json")
async def config() -> Dict[str, str]:
    return {"ws": args.broker_ws, "http": args.broker_http}


@app.get("/api/token")
async def token(user: str = "") -> Dict[str, str]:
    if not devkit.valid_name(user) or user == "auctioneer":
        raise HTTPException(400, "user: 1 to 32 letters, digits, . _ -")
    return {"user": user, "token": devkit.mint(SECRET, user, subscribe=["auction.>"], publish=["bids.>"])}


@app.get("/{path:path}")
async def page(path: str) -> Response:
    found = devkit.static_file(HERE, "/" + path)
    if found is None:
        raise HTTPException(404, "not found")
    return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-store"})


if __name__ == "__main__":
    SOCK = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    SOCK.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    SOCK.bind((args.host, args.port))
    SOCK.listen(128)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[SOCK])
