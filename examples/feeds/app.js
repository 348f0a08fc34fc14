// Live feeds: one page, three kinds of feed, each topic a thing that has a
// current value. Prices (prices.<symbol>) and sensor readings
// (sensors.<id>) are subscribed on wildcards with history 1: the broker
// answers with the last value of every topic it knows, then live, and the
// topic rule's conflate keeps a slow tab on the newest value instead of a
// backlog. Scores (sports.score.<match>) are last values too; the match
// events (sports.events) are a list: history 50, which the JS client
// resumes with `since` after a reconnect, so no event is shown twice.
import { $, start, timeOf } from "/example.js";

const { client } = await start({ connect: { pingInterval: 4000, pingTimeout: 3000, reconnect: { maxDelay: 3000 } } });

/** A tile per topic, created on its first value (sorted by name); returns it. */
function tileOf(box, id) {
    let tile = box.querySelector(`[data-id="${CSS.escape(id)}"]`);
    if (tile) return tile;
    box.querySelector("p.muted")?.remove();
    tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.id = id;
    tile.dataset.updates = "0";
    tile.innerHTML = '<span class="name"></span><b class="value"></b><span class="sub"></span>';
    tile.querySelector(".name").textContent = id;
    const after = [...box.children].find((t) => t.dataset.id > id);
    box.insertBefore(tile, after ?? null);
    return tile;
}

function update(tile, text, sub, direction) {
    tile.dataset.updates = String(Number(tile.dataset.updates) + 1);
    tile.dataset.value = text;
    tile.querySelector(".value").textContent = text;
    tile.querySelector(".sub").textContent = sub;
    if (direction) tile.dataset.dir = direction;
}

client.subscribe("prices.*", (msg) => {
    const d = msg.data;
    if (!d || typeof d.price !== "number") return;
    const tile = tileOf($("prices"), msg.topic.slice("prices.".length));
    const before = Number(tile.dataset.value);
    const change = typeof d.open === "number" && d.open > 0 ? ((d.price - d.open) / d.open) * 100 : 0;
    const digits = d.price < 10 ? 4 : 2;
    const dir = Number.isNaN(before) || d.price === before ? undefined : d.price > before ? "up" : "down";
    update(tile, d.price.toFixed(digits), `${change >= 0 ? "+" : ""}${change.toFixed(2)}% · ${timeOf(d.ts || Date.now())}`, dir);
    tile.dataset.change = change >= 0 ? "up" : "down";
}, { history: 1 });

client.subscribe("sensors.*", (msg) => {
    const d = msg.data;
    if (!d || typeof d.value !== "number") return;
    const tile = tileOf($("sensors"), msg.topic.slice("sensors.".length));
    update(tile, String(d.value), `${d.unit ?? ""} · ${timeOf(d.ts || Date.now())}`);
}, { history: 1 });

client.subscribe("sports.score.*", (msg) => {
    const d = msg.data;
    if (!d || typeof d.home !== "string") return;
    const id = msg.topic.slice("sports.score.".length);
    let row = $("scores").querySelector(`[data-match="${CSS.escape(id)}"]`);
    if (!row) {
        row = document.createElement("div");
        row.className = "score";
        row.dataset.match = id;
        row.innerHTML = '<span class="team home"></span><b class="goals"></b><span class="team away"></span><span class="minute"></span>';
        const after = [...$("scores").children].find((r) => r.dataset.match > id);
        $("scores").insertBefore(row, after ?? null);
    }
    row.querySelector(".home").textContent = d.home;
    row.querySelector(".away").textContent = d.away;
    row.querySelector(".goals").textContent = `${d.home_goals} – ${d.away_goals}`;
    row.querySelector(".minute").textContent = `${d.minute}'`;
    row.dataset.score = `${d.home_goals}-${d.away_goals}`;
}, { history: 1 });

const events = client.subscribe("sports.events", (msg) => {
    const d = msg.data;
    if (!d || !Number.isInteger(d.n)) return;
    const list = $("events");
    list.querySelector(".empty")?.remove();
    const li = document.createElement("li");
    li.dataset.n = String(d.n);
    li.dataset.kind = d.kind;
    const what = document.createElement("span");
    what.textContent = `${d.minute}' ${d.text}`;
    const when = document.createElement("span");
    when.className = "pos";
    when.textContent = timeOf(d.ts || Date.now());
    li.append(what, when);
    list.prepend(li);
    while (list.children.length > 50) list.lastElementChild.remove();
}, { history: 50 });
// History is a window: after a long absence the oldest missed events are gone.
events.on("recovered", ({ recovered }) => {
    if (recovered === false) {
        const banner = $("banner");
        banner.textContent = "Some match events were missed while offline; the list goes on from the latest.";
        banner.hidden = false;
    }
});
