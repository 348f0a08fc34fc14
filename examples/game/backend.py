#!/usr/bin/env python3
"""The game example's backend: serves the arena page, signs players in and
referees the game.

A player's token may publish only its own piece, `arena.pos.<name>`: the
broker refuses a move of anyone else's (`forbidden`), so the backend never
has to check who moved what. The referee (this process, with the Python
client) reads every move on `arena.pos.*` and is the only one allowed to
publish `arena.state`: where the coin is and the score of each player. A
player whose piece lands on the coin scores; the coin jumps to its next
place (a fixed sequence: the same game every start)."""
from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import wsbroker  # noqa: E402

COLS, ROWS = 20, 12
REFEREE = "referee"


def grants(user: str, query: dict) -> Optional[dict]:
    if user == REFEREE:
        return None
    return {"subscribe": ["arena.lobby", "arena.pos.*", "arena.state"], "publish": [f"arena.pos.{user}"]}


class Referee:
    def __init__(self) -> None:
        self.rng = random.Random(23)
        self.scores: Dict[str, int] = {}
        self.coin = self.next_coin()
        self.client: Optional[wsbroker.Client] = None

    def next_coin(self) -> Dict[str, int]:
        return {"x": self.rng.randrange(1, COLS - 1), "y": self.rng.randrange(1, ROWS - 1)}

    async def announce(self) -> None:
        assert self.client is not None
        await self.client.publish("arena.state", {"coin": self.coin, "scores": self.scores,
                                                  "ts": int(time.time() * 1000)})

    async def on_move(self, msg: wsbroker.Message) -> None:
        # The broker's stamp says who moved; the token said it may only be its own piece.
        player = msg.from_.user if msg.from_ else None
        d = msg.data
        if not player or not isinstance(d, dict) or msg.topic != f"arena.pos.{player}":
            return
        if d.get("x") == self.coin["x"] and d.get("y") == self.coin["y"]:
            self.scores[player] = self.scores.get(player, 0) + 1
            self.coin = self.next_coin()
            await self.announce()


async def referee(args) -> None:
    secret = devkit.secret_of(args.config)
    token = lambda: devkit.mint(secret, REFEREE, subscribe=["arena.pos.*"], publish=["arena.state"])  # noqa: E731
    game = Referee()
    async with wsbroker.connect(args.broker_ws, get_token=token) as client:
        game.client = client
        await client.subscribe("arena.pos.*", game.on_move)
        await game.announce()
        await asyncio.Event().wait()  # runs until the process stops


def run_referee(args) -> None:
    while True:
        try:
            asyncio.run(referee(args))
        except Exception as exc:  # the broker went away: start again
            print(f"game referee: {exc}", file=sys.stderr)
            time.sleep(1)


if __name__ == "__main__":
    a = devkit.parse_args("game example backend")
    threading.Thread(target=run_referee, args=(a,), daemon=True).start()
    devkit.serve(HERE, a, grants)
