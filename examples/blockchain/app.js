// Blockchain explorer: blocks (chain.block) and transactions
// (chain.tx.<from>.<to>) are one stream, chain.>. The block list asks for
// the last 20 blocks and then live; after a reconnect the JS client
// resubscribes with the stream position it saw (`since`), so the broker sends
// exactly the blocks missed, once, in order, or, when the log was trimmed
// meanwhile, a `gap` naming what is lost ("loss" event) and the rest. The
// head is a last value (chain.head, history 1). Watching an address is two
// wildcard subscriptions into the same stream: chain.tx.<addr>.* (sent) and
// chain.tx.*.<addr> (received).
import { $, start, timeOf } from "/example.js";

const { client } = await start({ connect: { pingInterval: 4000, pingTimeout: 3000, reconnect: { maxDelay: 3000 } } });
const KEEP = 30;
const short = (h) => (h.length > 20 ? `${h.slice(0, 10)}…${h.slice(-6)}` : h);

client.subscribe("chain.head", (msg) => {
    const d = msg.data;
    if (!d || !Number.isInteger(d.height)) return;
    $("head-height").textContent = `#${d.height}`;
    $("head-height").dataset.height = String(d.height);
    $("head-hash").textContent = short(String(d.hash));
    $("head-hash").title = String(d.hash);
    $("head-txs").textContent = String(d.tx_count);
    $("head-time").textContent = timeOf(d.ts || Date.now());
    const accounts = Array.isArray(d.accounts) ? d.accounts.filter((a) => typeof a === "string") : [];
    $("head-accounts").replaceChildren($("head-accounts").firstElementChild, ...accounts.map((a) => addressButton(a, short(a))));
}, { history: 1 });

function addressButton(addr, label) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "addr";
    b.textContent = label ?? addr;
    b.title = `watch ${addr}`;
    b.addEventListener("click", () => watch(addr));
    return b;
}

const blocks = client.subscribe("chain.block", (msg) => {
    const d = msg.data;
    if (!d || !Number.isInteger(d.height)) return;
    const list = $("blocks");
    list.querySelector(".empty")?.remove();
    const li = document.createElement("li");
    li.dataset.height = String(d.height);
    const left = document.createElement("span");
    left.innerHTML = "<b></b> <code></code>";
    left.querySelector("b").textContent = `#${d.height}`;
    left.querySelector("code").textContent = short(String(d.hash));
    const right = document.createElement("span");
    right.className = "pos";
    right.textContent = `${d.tx_count} tx · ${d.volume} · ${timeOf(d.ts || Date.now())}`;
    li.append(left, right);
    list.prepend(li);
    while (list.children.length > KEEP) list.lastElementChild.remove();
}, { history: 20 });
// The log no longer held everything this page missed: say so, in the list too.
blocks.on("loss", ({ seq, to }) => {
    const banner = $("banner");
    banner.textContent = `Offline too long: stream messages ${seq + 1}–${to} were trimmed from the log; the list goes on from the oldest kept.`;
    banner.hidden = false;
    const li = document.createElement("li");
    li.className = "gap";
    li.textContent = `gap: stream messages ${seq + 1}–${to} lost`;
    $("blocks").prepend(li);
});

let watching = null; // {addr, subs: [sent, received]}
const txs = new Map(); // id -> tx of the watched address

function renderTxs() {
    const rows = [...txs.values()].sort((a, b) => b.height - a.height || b.index - a.index).slice(0, 50);
    $("txs").replaceChildren(...(rows.length ? rows.map((t) => {
        const li = document.createElement("li");
        li.dataset.tx = t.id;
        li.dataset.from = t.from;
        li.dataset.to = t.to;
        const out = t.from === watching.addr;
        li.className = out ? "out" : "in";
        const who = document.createElement("span");
        who.append(`#${t.height} ${out ? "sent to " : "from "}`, addressButton(out ? t.to : t.from, short(out ? t.to : t.from)));
        const amt = document.createElement("b");
        amt.textContent = `${out ? "−" : "+"}${t.amount}`;
        li.append(who, amt);
        return li;
    }) : [Object.assign(document.createElement("li"), { className: "empty", textContent: "No transactions yet." })]));
}

function watch(addr) {
    addr = addr.trim().toLowerCase();
    if (!/^0x[0-9a-f]{4,40}$/.test(addr)) {
        $("watch-topics").textContent = "An address is 0x and hex digits.";
        return;
    }
    $("address").value = addr;
    if (watching?.addr === addr) return;
    for (const s of watching?.subs ?? []) s.unsubscribe().catch(() => {});
    txs.clear();
    const onTx = (msg) => {
        const t = msg.data;
        if (!t || typeof t.id !== "string" || watching?.addr !== addr) return;
        txs.set(t.id, t);
        renderTxs();
    };
    watching = {
        addr,
        subs: [client.subscribe(`chain.tx.${addr}.*`, onTx, { history: 50 }), client.subscribe(`chain.tx.*.${addr}`, onTx, { history: 50 })],
    };
    $("watch-topics").innerHTML = "Subscribed to <code></code> and <code></code>.";
    const [a, b] = $("watch-topics").querySelectorAll("code");
    a.textContent = `chain.tx.${addr}.*`;
    b.textContent = `chain.tx.*.${addr}`;
    renderTxs();
}
$("watch-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    watch($("address").value);
});
