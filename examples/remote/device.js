// The device: it answers each request on device.<id>.cmd (publishing to the
// request's reply_to) and reports its state on device.<id>.state, whose last
// value the broker keeps for consoles that open later.
import { $, start, timeOf } from "/example.js";

const { client, user } = await start({ tokenQuery: { role: "device" } });
const CMD = `device.${user}.cmd`;
const STATE = `device.${user}.state`;
$("cmd-topic").textContent = CMD;
$("lamp-title").textContent = user;
let on = false;

function render() {
    $("lamp").dataset.on = String(on);
    $("lamp-state").textContent = on ? "on" : "off";
}

function report() {
    return client.publish(STATE, { on, ts: Date.now() }).catch(() => {});
}

client.subscribe(CMD, (msg) => {
    const op = msg.data?.op;
    let answer;
    if (op === "on" || op === "off") {
        on = op === "on";
        answer = { ok: true, on };
    } else if (op === "toggle") {
        on = !on;
        answer = { ok: true, on };
    } else if (op === "ping") {
        answer = { ok: true, on };
    } else {
        answer = { ok: false, error: `unknown command ${JSON.stringify(op)}` };
    }
    render();
    const li = document.createElement("li");
    li.innerHTML = "<span></span><b></b>";
    li.firstChild.textContent = `${msg.from?.user ?? "?"} · ${timeOf(Date.now())}`;
    li.lastChild.textContent = String(op);
    $("heard").querySelector(".empty")?.remove();
    $("heard").prepend(li);
    if (msg.reply_to) client.publish(msg.reply_to, answer).catch(() => {});
    if (answer.ok && op !== "ping") report();
}).on("subscribed", report);
render();
