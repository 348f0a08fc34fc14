// The customer: ask the backend for an agent, then chat on the
// conversation's own topic (history brings it back after a reload).
import { $, start } from "/example.js";
import { addMessage } from "./chatlog.js";

const { client, user, getToken } = await start({ tokenQuery: { role: "customer" } });

async function begin() {
    const res = await fetch("/api/conversations", { method: "POST", headers: { Authorization: `Bearer ${await getToken()}` } });
    const body = await res.json();
    if (!body.agent) {
        $("start-status").textContent = "No agent is online right now: try again in a minute.";
        return;
    }
    $("start-wrap").hidden = true;
    $("agent-name").textContent = `with ${body.agent}`;
    $("agent-name").dataset.agent = body.agent;
    $("messages").hidden = false;
    $("composer").hidden = false;
    client.subscribe(body.conv, (msg) => addMessage($("messages"), msg, client.welcome?.client_id), { history: 200 });
    $("composer").addEventListener("submit", (ev) => {
        ev.preventDefault();
        const text = $("text").value.trim();
        if (!text) return;
        $("text").value = "";
        client.publish(body.conv, { text }).catch((err) => { $("start-status").textContent = err.message; });
    });
}
$("start").addEventListener("click", begin);
