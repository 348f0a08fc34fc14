// The operator console: devices appear from their last reported state
// (device.*.state, history 1); each button is a request to device.<id>.cmd.
// The answer is the device's own; "offline" is the broker's no_responders,
// which comes at once when nobody subscribes to the device's topic.
import { $, start, timeOf } from "/example.js";

const { client } = await start();
const devices = new Map(); // id -> {li, state}

function row(id) {
    let d = devices.get(id);
    if (d) return d;
    const li = document.createElement("li");
    li.dataset.device = id;
    const name = document.createElement("b");
    name.textContent = id;
    const state = document.createElement("span");
    state.className = "state";
    const actions = document.createElement("span");
    actions.className = "actions";
    for (const op of ["on", "off", "toggle"]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = op === "toggle" ? "Toggle" : op === "on" ? "On" : "Off";
        b.dataset.op = op;
        b.addEventListener("click", () => command(id, op));
        actions.append(b);
    }
    li.append(name, state, actions);
    d = { li, state };
    devices.set(id, d);
    $("devices").querySelector(".empty")?.remove();
    $("devices").replaceChildren(...[...devices.keys()].sort().map((k) => devices.get(k).li));
    return d;
}

function showState(id, text, online) {
    const d = row(id);
    d.state.textContent = text;
    d.li.dataset.online = String(online);
}

function log(id, op, text, ok, code) {
    const li = document.createElement("li");
    li.dataset.device = id;
    li.dataset.result = ok ? "ok" : code;
    const what = document.createElement("span");
    what.textContent = `${timeOf(Date.now())} ${id} ${op}`;
    const res = document.createElement("b");
    res.className = ok ? "status-good" : "status-bad";
    res.textContent = text;
    li.append(what, res);
    $("log").querySelector(".empty")?.remove();
    $("log").prepend(li);
}

async function command(id, op) {
    const t0 = performance.now();
    try {
        const { data } = await client.request(`device.${id}.cmd`, { op }, { timeout: 5000 });
        const ms = Math.round(performance.now() - t0);
        if (data?.ok) {
            log(id, op, `${data.on ? "on" : "off"} (${ms} ms)`, true);
            showState(id, data.on ? "on" : "off", true);
        } else {
            log(id, op, String(data?.error ?? "refused"), false, "refused");
        }
    } catch (err) {
        if (err.code === "no_responders") {
            log(id, op, "device offline", false, "no_responders");
            showState(id, "offline", false);
        } else {
            log(id, op, err.code === "timeout" ? "no answer in 5 s" : err.message, false, err.code);
        }
    }
}

client.subscribe("device.*.state", (msg) => {
    const id = msg.topic.split(".")[1];
    showState(id, `${msg.data?.on ? "on" : "off"} · ${timeOf(Number(msg.data?.ts) || Date.now())}`, true);
}, { history: 1 });

$("direct").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("direct-id").value.trim();
    if (/^[A-Za-z0-9_-]{1,32}$/.test(id)) command(id, "ping");
});
