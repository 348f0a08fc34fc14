// Auction: the page is a view of the stream `auction.>` (lots opened, bids
// accepted, lots sold), folded in order. A bid is a request to the backend,
// which is the only one allowed to publish on the stream. After a reconnect
// the JS client resubscribes with the stream position it saw (`since`) and
// the broker replays exactly what this page missed.
import { $, start, timeOf } from "/example.js";

// A bidder must know at once when the link is dead (and be back quickly):
// ping after 4 s of silence, give up on the socket 3 s later, retry within 3 s.
const { client, user } = await start({
    connect: { pingInterval: 4000, pingTimeout: 3000, reconnect: { maxDelay: 3000 } },
});
let lot = null; // {lot, title, start, seller, ends_at, bids: [], sold: null | {winner, amount} | false}

function floor() {
    if (!lot) return 1;
    const top = lot.bids.at(-1);
    return top ? top.amount + 5 : lot.start;
}

function render() {
    if (!lot) return;
    const top = lot.bids.at(-1);
    $("lot-title").textContent = lot.title;
    $("lot-topic").textContent = `auction.${lot.lot}.*`;
    $("lot-price").textContent = top ? String(top.amount) : `${lot.start} start`;
    $("lot-leader").textContent = top ? (top.bidder === user ? `${top.bidder} (you)` : top.bidder) : "no bids yet";
    $("lot-count").textContent = String(lot.bids.length);
    const closed = lot.sold !== null;
    const result = $("result");
    result.hidden = !closed;
    result.classList.toggle("unsold", lot.sold === false);
    if (lot.sold) {
        result.textContent = lot.sold.winner === user
            ? `Sold to you for ${lot.sold.amount}!`
            : `Sold to ${lot.sold.winner} for ${lot.sold.amount}`;
        result.dataset.winner = lot.sold.winner;
    } else if (lot.sold === false) {
        result.textContent = "Closed without a bid";
    }
    $("bid-form").hidden = closed || user === lot.seller;
    const amount = $("bid-amount");
    if (!amount.value || Number(amount.value) < floor()) amount.value = String(floor());
    $("seller").hidden = user !== lot.seller;
    $("hammer").disabled = closed;
    $("bids").replaceChildren(...(lot.bids.length ? [...lot.bids].reverse().map((b, i) => {
        const li = document.createElement("li");
        li.className = i === 0 ? "lead" : "";
        li.dataset.bidder = b.bidder;
        const who = document.createElement("span");
        who.textContent = `${b.bidder} · ${timeOf(b.ts)}`;
        const amt = document.createElement("b");
        amt.textContent = String(b.amount);
        li.append(who, amt);
        return li;
    }) : [Object.assign(document.createElement("li"), { className: "empty", textContent: "No bids yet." })]));
    tick();
}

function tick() {
    const el = $("lot-countdown");
    if (!lot) return;
    if (lot.sold !== null) {
        el.textContent = "closed";
        return;
    }
    const s = Math.max(0, Math.round((lot.ends_at - Date.now()) / 1000));
    el.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
setInterval(tick, 1000);

client.subscribe("auction.>", (msg) => {
    const [, id, kind] = msg.topic.split(".");
    const d = msg.data;
    if (kind === "open") {
        lot = { ...d, bids: [], sold: null };
        $("bid-status").textContent = "";
        $("bid-amount").value = "";
    } else if (lot?.lot !== id) {
        return; // an earlier lot's news, replayed
    } else if (kind === "bid") {
        lot.bids.push(d);
    } else if (kind === "sold") {
        lot.sold = { winner: d.winner, amount: d.amount };
        $("bid-status").textContent = "";
    } else if (kind === "unsold") {
        lot.sold = false;
    }
    render();
}, { history: 1000 });

$("bid-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!lot) return;
    const amount = Number($("bid-amount").value);
    const status = $("bid-status");
    status.textContent = `bidding ${amount}…`;
    try {
        const { data } = await client.request(`bids.${lot.lot}`, { amount }, { timeout: 5000 });
        status.textContent = data.ok ? `Your bid of ${amount} is in.` : `Not accepted: ${data.reason}`;
        status.className = data.ok ? "status-good small" : "status-bad small";
    } catch (err) {
        status.textContent = err.code === "no_responders" ? "The auctioneer is offline: try again soon." : `Not sent: ${err.message}`;
        status.className = "status-bad small";
    }
});

async function sellerCall(path) {
    const { token } = await (await fetch(`/api/token?user=${encodeURIComponent(user)}`)).json();
    const res = await fetch(path, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) $("bid-status").textContent = `${path}: ${res.status}`;
}
$("hammer").addEventListener("click", () => sellerCall("/api/hammer"));
$("next").addEventListener("click", () => sellerCall("/api/next"));
