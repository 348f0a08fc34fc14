// Live-stream chat: everyone on live.keynote.chat; the broker's rate limit
// (rate.per user) refuses a viewer's messages beyond two a second with
// `rate_limited`, which the page shows as "slow down". The viewer count is
// presence_stats on the chat topic, refreshed every 5 s (cheap: counts, not
// the member list, which a big audience would make long; and every request
// counts against the viewer's rate).
import { $, colorOf, start } from "/example.js";

const TOPIC = "live.keynote.chat";
const { client } = await start();

client.subscribe(TOPIC, (msg) => {
    const who = msg.from?.user ?? "anonymous";
    const li = document.createElement("li");
    li.className = msg.from?.client === client.welcome?.client_id ? "msg mine" : "msg";
    li.dataset.user = who;
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.style.background = colorOf(who);
    avatar.textContent = who.slice(0, 1).toUpperCase();
    const body = document.createElement("div");
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = String(msg.data?.text ?? "");
    body.append(name, text);
    li.append(avatar, body);
    $("messages").querySelector(".empty")?.remove();
    $("messages").append(li);
    while ($("messages").children.length > 200) $("messages").firstChild.remove();
    $("messages").scrollTop = $("messages").scrollHeight;
}, { history: 30 });

let refused = 0;
$("composer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    try {
        await client.publish(TOPIC, { text });
    } catch (err) {
        if (err.code === "rate_limited") {
            refused++;
            $("notice").textContent = `Slow down: two messages a second (${refused} not sent).`;
            $("notice").dataset.refused = String(refused);
        } else {
            $("notice").textContent = `Not sent: ${err.message}`;
        }
    }
});

async function refreshViewers() {
    try {
        const { users } = await client.presenceStats(TOPIC);
        $("viewers").textContent = String(users);
    } catch {
        /* offline: the count comes back with the connection */
    }
}
client.on("open", refreshViewers);
setInterval(refreshViewers, 5000);
