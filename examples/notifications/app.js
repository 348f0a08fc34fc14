// Notifications: subscribe to your own topic (notify.<you>) asking for what
// the broker kept (history 100); the bell counts what you have not opened.
// A reconnect resumes with `since` (the JS client does it), so nothing is
// lost or shown twice. Sending goes through the backend (POST /api/notify).
import { $, start, timeOf } from "/example.js";

const { client, user, getToken } = await start();
const TOPIC = `notify.${user}`;
$("inbox-topic").textContent = TOPIC;
let unread = 0;

function renderBadge() {
    $("unread").hidden = unread === 0;
    $("unread").textContent = String(unread);
}

client.subscribe(TOPIC, (msg) => {
    const d = msg.data || {};
    const li = document.createElement("li");
    li.className = "unread";
    li.dataset.from = String(d.from);
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = String(d.from);
    const text = document.createElement("span");
    text.className = "note";
    text.textContent = String(d.text);
    const when = document.createElement("span");
    when.className = "muted small";
    when.textContent = timeOf(Number(d.ts) || Date.now());
    li.append(from, text, when);
    $("inbox").querySelector(".empty")?.remove();
    $("inbox").prepend(li);
    unread++;
    renderBadge();
}, { history: 100 });

$("bell").addEventListener("click", () => {
    unread = 0;
    renderBadge();
    for (const li of $("inbox").querySelectorAll("li.unread")) li.classList.remove("unread");
});

$("send").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = $("send-status");
    const to = $("send-to").value.trim();
    if (!/^[A-Za-z0-9._-]{1,32}$/.test(to) || !$("send-text").value.trim()) {
        status.textContent = "Say who to notify (a user name) and what.";
        status.className = "status-bad small";
        return;
    }
    const res = await fetch("/api/notify", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${await getToken()}` },
        body: JSON.stringify({ to: $("send-to").value.trim(), text: $("send-text").value }),
    });
    const body = await res.json();
    status.textContent = res.ok ? `Sent to ${$("send-to").value.trim()}.` : `Not sent: ${body.error}`;
    status.className = res.ok ? "status-good small" : "status-bad small";
    if (res.ok) $("send-text").value = "";
});
