// Live dashboard: business numbers from the app (dash.orders, published by
// a Django post_save signal; history 20, so the page starts with the latest)
// next to the broker's own statistics ($sys.node.<id>.stats, every second).
import { $, start, timeOf } from "/example.js";

const { client, getToken } = await start();
const money = (n) => Number(n).toFixed(2);

client.subscribe("dash.orders", (msg) => {
    const d = msg.data || {};
    $("kpi-orders").textContent = String(d.orders);
    $("kpi-revenue").textContent = money(d.revenue);
    const li = document.createElement("li");
    li.dataset.order = String(d.id);
    const who = document.createElement("span");
    who.textContent = `#${d.id} ${d.customer} · ${timeOf(Number(d.ts) || Date.now())}`;
    const amt = document.createElement("b");
    amt.textContent = money(d.amount);
    li.append(who, amt);
    $("orders").querySelector(".empty")?.remove();
    $("orders").prepend(li);
    while ($("orders").children.length > 20) $("orders").lastChild.remove();
}, { history: 20 });

client.subscribe("$sys.node.*.stats", (msg) => {
    const s = msg.data || {};
    $("kpi-connections").textContent = String(s.connections);
    $("kpi-rate").textContent = Number(s.messages_in_per_s ?? 0).toFixed(1);
    $("node").textContent = `node ${s.node} · up ${Math.round(s.uptime_s)} s · ${s.subscriptions} subscriptions · ${s.topics} topics`;
}, { history: 1 });

$("order").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = $("order-status");
    const customer = $("order-customer").value.trim();
    const amount = Number($("order-amount").value);
    if (!customer || !(amount > 0)) {
        status.textContent = "A customer and an amount, please.";
        status.className = "status-bad small";
        return;
    }
    const res = await fetch("/api/orders", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${await getToken()}` },
        body: JSON.stringify({ customer, amount }),
    });
    const body = await res.json();
    status.textContent = res.ok ? `Order #${body.id} saved.` : `Not saved: ${body.error}`;
    status.className = res.ok ? "status-good small" : "status-bad small";
});
