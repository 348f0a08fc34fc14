"""The asyncio client against the real broker: subscribe/publish/acks,
wildcards, history and `since` recovery after a dropped connection and after a
broker restart, reconnect with the offline queue, typed errors.

No test sleeps to synchronise: each waits for the condition it checks
(wait_until, or a `ping`, which is a barrier: PROTOCOL.md 6), bounded in time."""
from __future__ import annotations

import asyncio
import json

import pytest

import wsbroker
from conftest import run, wait_until

FAST = wsbroker.Reconnect(min_delay=0.05, max_delay=0.5)
HISTORY = json.dumps([{"pattern": "chat.>", "size": 100}])


def test_subscribe_publish_ack_callback_and_iterator(broker):
    async def main():
        async with wsbroker.connect(broker.ws_url) as c:
            assert c.state == "open" and c.client_id
            got = []
            sub = await c.subscribe("orders.42", got.append)
            it = await c.subscribe("orders.>")
            seq1 = await c.publish("orders.42", {"state": "new"})
            seq2 = await c.publish("orders.42", {"state": "filled"})
            assert (seq1, seq2) == (1, 2)
            assert await c.publish("orders.42", None, ack=False) is None
            await c.ping()
            assert [(m.topic, m.seq, m.data) for m in got] == [
                ("orders.42", 1, {"state": "new"}), ("orders.42", 2, {"state": "filled"}), ("orders.42", 3, None)]
            first = await it.__anext__()
            assert (first.topic, first.seq, first.data) == ("orders.42", 1, {"state": "new"})
            await sub.unsubscribe()
            assert sub.closed
            await c.publish("orders.42", 4)
            assert [m.seq async for m in _take(it, 3)] == [2, 3, 4]
            assert len(got) == 3  # unsubscribed: nothing more
            await it.unsubscribe()
        assert c.state == "closed"
        with pytest.raises(wsbroker.Closed):
            await c.publish("orders.42", 5)
    run(main())


async def _take(sub, n):
    for _ in range(n):
        yield await sub.__anext__()


def test_broker_errors_are_typed(broker):
    async def main():
        async with wsbroker.connect(broker.ws_url) as c:
            with pytest.raises(wsbroker.Forbidden) as e:
                await c.publish("$sys.x", 1)
            assert e.value.code == "forbidden" and e.value.topic == "$sys.x"
            with pytest.raises(wsbroker.BadTopic):
                await c.publish("a.*", 1)
            with pytest.raises(wsbroker.BadTopic):
                await c.subscribe("a..b")
            with pytest.raises(wsbroker.Forbidden):
                await c.subscribe("_inbox.>")
            errors = []
            c.on("error", errors.append)
            await c.publish("a.>", 1, ack=False)  # no id: the error is an event
            await wait_until(lambda: errors, what="the error event of an unacknowledged publish")
            assert isinstance(errors[0], wsbroker.BadTopic)
            with pytest.raises(ValueError):
                await c.publish("a.b", float("nan"))
            assert c.state == "open"
    run(main())


def test_too_large_is_refused_before_sending(broker_factory):
    b = broker_factory("--max-message-size", "1KiB")

    async def main():
        async with wsbroker.connect(b.ws_url) as c:
            with pytest.raises(wsbroker.TooLarge):
                await c.publish("a.b", "x" * 2000)
            assert await c.publish("a.b", "x" * 100) == 1  # still connected
    run(main())


def test_wildcards_deliver_once_per_subscription(broker):
    async def main():
        async with wsbroker.connect(broker.ws_url) as c:
            star, gt, exact, every = [], [], [], []
            await c.subscribe("prices.*.usd", star.append)
            await c.subscribe("prices.>", gt.append)
            await c.subscribe("prices.btc.usd", exact.append)
            await c.subscribe(">", every.append)
            for topic in ("prices.btc.usd", "prices.eth.usd", "prices.btc.eur", "other"):
                await c.publish(topic, topic)
            await c.ping()
            assert [m.topic for m in star] == ["prices.btc.usd", "prices.eth.usd"]
            assert [m.topic for m in gt] == ["prices.btc.usd", "prices.eth.usd", "prices.btc.eur"]
            assert [m.topic for m in exact] == ["prices.btc.usd"]
            assert [m.topic for m in every] == ["prices.btc.usd", "prices.eth.usd", "prices.btc.eur", "other"]
    assert wsbroker.matches("a.>", "a.b.c") and not wsbroker.matches("a.>", "a")
    assert not wsbroker.matches(">", "$sys.x") and wsbroker.matches("$sys.>", "$sys.x")
    run(main())


def test_history_and_since(broker_factory):
    b = broker_factory("--history", HISTORY)

    async def main():
        async with wsbroker.connect(b.ws_url) as pub:
            seqs = [await pub.publish("chat.room1", f"m{i}") for i in range(1, 6)]
            assert seqs == [1, 2, 3, 4, 5]
            async with wsbroker.connect(b.ws_url) as c:
                last2 = []
                await c.subscribe("chat.room1", last2.append, history=2)
                await c.ping()
                assert [(m.seq, m.data) for m in last2] == [(4, "m4"), (5, "m5")]
                epoch = last2[0].epoch
                assert epoch
                since = []
                res = await c.subscribe("chat.room1", since.append, since={"epoch": epoch, "seq": 2}).ready
                assert res.recovered is True
                await pub.publish("chat.room1", "m6")
                await wait_until(lambda: any(m.seq == 6 for m in last2), what="m6")
                assert [m.data for m in since] == ["m3", "m4", "m5", "m6"]
                # The first subscription saw no duplicate of the replay.
                assert [m.seq for m in last2] == [4, 5, 6]
                # Last value on a wildcard: each topic's last message.
                await pub.publish("chat.room2", "r2")
                lv = []
                await c.subscribe("chat.*", lv.append, history=1)
                await c.ping()
                assert sorted((m.topic, m.data) for m in lv) == [("chat.room1", "m6"), ("chat.room2", "r2")]
                with pytest.raises(wsbroker.BadSince):
                    await c.subscribe("chat.room1", since={"epoch": "x" * 65, "seq": 1})
    run(main())


def test_recovers_with_since_after_the_connection_is_lost(broker_factory):
    b = broker_factory("--history", HISTORY)
    http = wsbroker.HttpPublisher(b.url)

    async def main():
        c = await wsbroker.connect(b.ws_url, reconnect=FAST)
        got, recoveries, disconnects = [], [], []
        c.on("recovered", recoveries.append)
        c.on("disconnect", disconnects.append)
        await c.subscribe("chat.room1", got.append)
        await c.subscribe("chat.*")  # a pattern is resubscribed too (live only)
        await c.publish("chat.room1", "before")
        await c.ping()
        first_id = c.client_id
        # The network fails. The loop is blocked by the synchronous HTTP
        # publishes below, so the client cannot reconnect before they are in
        # the broker's history: it must recover them with `since`.
        c._ws.transport.abort()
        assert [http.publish("chat.room1", f"missed{i}") for i in (1, 2)] == [2, 3]
        await wait_until(lambda: recoveries, what="the resubscribe with since")
        assert recoveries[0].recovered is True and recoveries[0].topic == "chat.room1"
        await c.publish("chat.room1", "after")
        await wait_until(lambda: len(got) == 4, what="the replay and the live message")
        assert [(m.seq, m.data) for m in got] == [(1, "before"), (2, "missed1"), (3, "missed2"), (4, "after")]
        assert c.client_id != first_id and c.stats["reconnects"] == 1
        assert disconnects and disconnects[0].code == 1006
        await c.close()
    run(main())


def test_last_value_on_a_pattern_is_asked_again_after_a_reconnect(broker_factory):
    """A pattern subscribed with history (last value on wildcards, PROTOCOL.md
    3.1a): after a dropped connection the topics that changed while offline
    arrive, the ones that did not are not handed over twice."""
    b = broker_factory("--history", HISTORY)
    http = wsbroker.HttpPublisher(b.url)

    async def main():
        http.publish("chat.a", "a1")
        http.publish("chat.b", "b1")
        c = await wsbroker.connect(b.ws_url, reconnect=FAST)
        got, subscribed = [], []
        sub = await c.subscribe("chat.*", lambda m: got.append((m.topic, m.data)), history=1)
        sub.on("subscribed", subscribed.append)
        await wait_until(lambda: len(got) == 2, what="the replay")
        # The loop is blocked by the synchronous HTTP publishes below, so
        # the client cannot reconnect before they are in the broker's history.
        c._ws.transport.abort()
        assert [http.publish("chat.a", "a2"), http.publish("chat.c", "c1")] == [2, 1]
        await wait_until(lambda: subscribed, what="the resubscribe")
        await c.publish("chat.b", "b2")  # live, after the replay (in order)
        await wait_until(lambda: ("chat.b", "b2") in got, what="the live message")
        assert sorted(got) == [("chat.a", "a1"), ("chat.a", "a2"), ("chat.b", "b1"),
                               ("chat.b", "b2"), ("chat.c", "c1")]
        assert c.stats["reconnects"] == 1
        await c.close()
    run(main())


def test_reconnects_after_a_broker_restart_and_sends_the_offline_queue(broker_factory, tmp_path):
    b = broker_factory("--history", HISTORY, name="first")

    async def main():
        nonlocal b
        c = await wsbroker.connect(b.ws_url, reconnect=FAST)
        got, recoveries, states = [], [], []
        c.on("recovered", recoveries.append)
        c.on("state", lambda s, prev: states.append(s))
        await c.subscribe("chat.room1", got.append)
        assert await c.publish("chat.room1", "one") == 1
        await c.ping()
        port = b.port
        b.stop()
        await wait_until(lambda: c.state == "connecting", what="the client to see the broker go")
        with pytest.raises(wsbroker.Disconnected):
            await c.presence("chat.room1")  # queries are not queued
        queued = asyncio.ensure_future(c.publish("chat.room1", "queued"))
        await wait_until(lambda: c.queued == 1, what="the publish to be queued")
        b = broker_factory("--history", HISTORY, name="second", port=port)
        # The new broker has a new epoch: since cannot be honoured.
        await wait_until(lambda: recoveries, timeout=20, what="the resubscribe after the restart")
        assert recoveries[0].recovered is False
        assert await queued == 1  # seq 1 of the new broker's epoch
        await wait_until(lambda: len(got) == 2, what="the queued message, delivered after resubscribing")
        assert [m.data for m in got] == ["one", "queued"] and got[0].epoch != got[1].epoch
        assert states[-1] == "open" and "connecting" in states
        await c.close()
    run(main())


def test_unacknowledged_publish_is_disconnected_not_resent(broker):
    async def main():
        c = await wsbroker.connect(broker.ws_url, reconnect=FAST)
        # Sent (written) but the socket dies before the ack can be read: the
        # client reads nothing more from here on.
        c._ws.transport.pause_reading()
        task = asyncio.ensure_future(c.publish("a.b", 1))
        await wait_until(lambda: c._pending, what="the publish to be pending")
        c._ws.transport.abort()
        with pytest.raises(wsbroker.Disconnected):
            await task
        await c.wait_open()
        await c.close()
    run(main())


def test_connect_failures(broker_factory):
    b = broker_factory()
    port = b.port
    b.stop()

    async def main():
        # Nobody listens: connect keeps retrying; the caller bounds it.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(wsbroker.connect(f"ws://127.0.0.1:{port}/ws", reconnect=FAST), 0.5)
        # Reconnecting off: the first failure closes the client for good.
        with pytest.raises(wsbroker.Closed):
            await wsbroker.connect(f"ws://127.0.0.1:{port}/ws", reconnect=False)
    run(main())
    with pytest.raises(ValueError):
        run(_bad_url())


async def _bad_url():
    await wsbroker.connect("ftp://127.0.0.1/ws")


def _metric(b, name):
    import urllib.request
    with urllib.request.urlopen(b.url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def test_a_gap_is_recovered_with_since(broker_factory):
    """A reader that stops reading on a `"slow_consumer":"drop"` topic gets a
    `gap` (PROTOCOL.md 4.6); the client resubscribes with the gap's position
    at once and the replay fills it: every seq arrives, once, in order."""
    rules = json.dumps([{"pattern": "feed.>", "size": 100000, "slow_consumer": "drop"}])
    b = broker_factory("--history", rules, "--max-outbound-bytes", "64KiB")
    http = wsbroker.HttpPublisher(b.url)

    async def main():
        c = await wsbroker.connect(b.ws_url)
        got, gaps, recoveries = [], [], []
        c.on("gap", gaps.append)
        c.on("recovered", recoveries.append)
        await c.subscribe("feed.x", got.append)
        c._ws.transport.pause_reading()
        # Publish (the loop is blocked meanwhile, which is the point: the
        # client reads nothing) until the broker has sent the gap; bounded by
        # the test's timeout, driven by the broker's own count.
        last = 0
        while _metric(b, "wsbroker_history_gaps_total") < 1:
            seqs = http.publish_many([("feed.x", "x" * 2000)] * 50)
            assert all(isinstance(s, int) for s in seqs), seqs
            last = seqs[-1]
        c._ws.transport.resume_reading()
        await wait_until(lambda: recoveries, timeout=30, what="the recovery after the gap")
        assert gaps and gaps[0].topic == "feed.x" and recoveries[0].recovered is True
        await wait_until(lambda: len(got) >= last, timeout=30, what="every message")
        assert [m.seq for m in got] == list(range(1, last + 1))
        assert c.stats["reconnects"] == 0
        await c.close()
    run(main())


def test_a_stream_gap_is_recovered_and_a_loss_is_reported(broker_factory):
    """Streams (PROTOCOL.md 3.1b, 4.6): a slow reader of a pattern inside a
    `"slow_consumer":"drop"` stream gets a gap naming its subscription and
    the stream; the client resumes with since at once and every matching
    message arrives once, in stream order. A since past what the log holds
    is a `loss` (gap with `to`), then the rest of the log."""
    rules = json.dumps([{"pattern": "auction.>", "stream": {"size": 100000, "slow_consumer": "drop"}},
                        {"pattern": "tiny.>", "stream": {"size": 2}}])
    b = broker_factory("--topics", rules, "--max-outbound-bytes", "64KiB")
    http = wsbroker.HttpPublisher(b.url)

    async def main():
        c = await wsbroker.connect(b.ws_url)
        got, gaps, recoveries = [], [], []
        c.on("recovered", recoveries.append)
        sub = await c.subscribe("auction.*.bid", got.append)
        sub.on("gap", gaps.append)
        c._ws.transport.pause_reading()
        bids = []
        while _metric(b, "wsbroker_history_gaps_total") < 1:
            items = [("auction.a1.bid", "x" * 2000), ("auction.a1.ask", "y" * 2000)] * 25
            seqs = http.publish_many(items)
            assert all(isinstance(s, int) for s in seqs), seqs
            bids += seqs[0::2]
        c._ws.transport.resume_reading()
        await wait_until(lambda: recoveries, timeout=30, what="the recovery after the gap")
        assert gaps[0].topic == "auction.*.bid" and gaps[0].stream == "auction.>" and gaps[0].to is None
        assert recoveries[0].recovered is True
        await wait_until(lambda: len(got) >= len(bids), timeout=30, what="every bid")
        assert [m.seq for m in got] == bids
        assert c.stats["reconnects"] == 0 and c.stats["losses"] == 0

        # The log of tiny.> keeps 2: a since of 1 with seqs up to 5 loses 2..3.
        losses, tiny = [], []
        c.on("loss", losses.append)
        t = await c.subscribe("tiny.*", tiny.append)
        for i in range(5):
            http.publish(f"tiny.t{i % 2}", i)
        await wait_until(lambda: len(tiny) == 5, what="the tiny stream")
        epoch = tiny[0].epoch
        late = await c.subscribe("tiny.t1", since={"epoch": epoch, "seq": 1})
        await wait_until(lambda: losses, what="the loss")
        assert (losses[0].topic, losses[0].stream, losses[0].seq, losses[0].to) == ("tiny.t1", "tiny.>", 1, 3)
        assert c.stats["losses"] == 1
        # Then what the log still holds of tiny.t1 (seq 2 was lost), then live.
        assert [m.seq async for m in _take(late, 1)] == [4]
        assert http.publish("tiny.t1", "live") == 6
        assert [m.seq async for m in _take(late, 1)] == [6]
        await t.unsubscribe()
        await c.close()
    run(main())
