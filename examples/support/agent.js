// The agent: online while subscribed to support.agents (presence, which the
// router reads); conversations arrive on support.assign.<me> (history: a
// reload gets the queue back) and each one is a topic of its own.
import { $, start } from "/example.js";
import { addMessage } from "./chatlog.js";

const { client, user } = await start({ tokenQuery: { role: "agent" } });
client.subscribe("support.agents", () => {});
const open = new Set();

client.subscribe(`support.assign.${user}`, (msg) => {
    const { customer, conv } = msg.data || {};
    if (!customer || open.has(conv)) return;
    open.add(conv);
    $("convs").querySelector(".empty")?.remove();
    const box = document.createElement("div");
    box.className = "conv";
    box.dataset.customer = customer;
    const h = document.createElement("h3");
    h.textContent = customer;
    const list = document.createElement("ol");
    list.className = "messages";
    const form = document.createElement("form");
    form.className = "composer";
    form.autocomplete = "off";
    const input = document.createElement("input");
    input.placeholder = `Reply to ${customer}…`;
    input.setAttribute("aria-label", `reply to ${customer}`);
    input.style.flex = "1";
    const send = document.createElement("button");
    send.type = "submit";
    send.textContent = "Reply";
    form.append(input, send);
    form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const text = input.value.trim();
        if (!text) return;
        input.value = "";
        client.publish(conv, { text }).catch(() => {});
    });
    box.append(h, list, form);
    $("convs").append(box);
    $("conv-count").textContent = String(open.size);
    client.subscribe(conv, (m) => addMessage(list, m, client.welcome?.client_id), { history: 200 });
}, { history: 50 });
