// GPS tracking: every vehicle publishes {lat, lon, heading, speed, ts} on
// fleet.vehicle.<id>. The map subscribes to the wildcard fleet.vehicle.*
// with history 1: the broker answers with the last position of every
// vehicle it knows (last value on wildcards), then live. After a reconnect
// the JS client subscribes again the same way, so the map jumps to where
// each vehicle is now instead of replaying where it was. The topic rule's
// conflate keeps a slow page from building a backlog.
import { $, colorOf, start, timeOf } from "/example.js";

const { client, user } = await start({ connect: { pingInterval: 5000, pingTimeout: 3000, reconnect: { maxDelay: 3000 } } });
const SVG = "http://www.w3.org/2000/svg";
const CENTER = { lat: 52.52, lon: 13.405 };
const SPAN = { lat: 0.02, lon: 0.035 }; // half the map, in degrees
const W = 1000;
const H = 640;
const vehicles = new Map(); // id -> {lat, lon, heading, speed, ts, updates, el, li}

function project({ lat, lon }) {
    const x = ((lon - CENTER.lon) / SPAN.lon + 1) * (W / 2);
    const y = (1 - (lat - CENTER.lat) / SPAN.lat) * (H / 2);
    return { x: Math.max(12, Math.min(W - 12, x)), y: Math.max(12, Math.min(H - 12, y)) };
}

// A stylised street grid, so the dots have somewhere to be.
function drawStreets() {
    const g = $("streets");
    const line = (x1, y1, x2, y2, main) => {
        const l = document.createElementNS(SVG, "line");
        Object.entries({ x1, y1, x2, y2 }).forEach(([k, v]) => l.setAttribute(k, v));
        l.setAttribute("class", main ? "street main" : "street");
        g.append(l);
    };
    for (let x = 60; x < W; x += 110) line(x, 0, x + 40, H, x === 500);
    for (let y = 50; y < H; y += 95) line(0, y, W, y - 20, y === 335);
}
drawStreets();

function show(id, pos) {
    let v = vehicles.get(id);
    if (!v) {
        const el = document.createElementNS(SVG, "g");
        el.setAttribute("class", "vehicle");
        el.dataset.vehicle = id;
        const c = document.createElementNS(SVG, "circle");
        c.setAttribute("r", id === user ? 14 : 11);
        c.setAttribute("fill", colorOf(id));
        const t = document.createElementNS(SVG, "text");
        t.textContent = id;
        el.append(c, t);
        $("markers").append(el);
        const li = document.createElement("li");
        li.dataset.vehicle = id;
        v = { updates: 0, el, li };
        vehicles.set(id, v);
        $("vehicles").querySelector(".empty")?.remove();
        const items = [...vehicles.keys()].sort().map((k) => vehicles.get(k).li);
        $("vehicles").replaceChildren(...items);
        $("vehicle-count").textContent = String(vehicles.size);
    }
    Object.assign(v, pos);
    v.updates++;
    const { x, y } = project(pos);
    const [c, t] = v.el.children;
    c.setAttribute("cx", x.toFixed(1));
    c.setAttribute("cy", y.toFixed(1));
    t.setAttribute("x", (x + 16).toFixed(1));
    t.setAttribute("y", (y - 12).toFixed(1));
    v.el.dataset.lat = String(pos.lat);
    v.el.dataset.lon = String(pos.lon);
    v.li.dataset.updates = String(v.updates);
    v.li.innerHTML = "";
    const name = document.createElement("b");
    name.textContent = id === user ? `${id} (you)` : id;
    const where = document.createElement("span");
    where.className = "pos";
    where.textContent = `${Number(pos.lat).toFixed(4)}, ${Number(pos.lon).toFixed(4)} · ${timeOf(Number(pos.ts) || Date.now())}`;
    v.li.append(name, where);
}

// After a reconnect the JS client asks for the last values again (last value
// on a wildcard is re-asked on every resubscribe) and hands over only the
// positions that changed while the page was offline.
client.subscribe("fleet.vehicle.*", (msg) => {
    const d = msg.data;
    if (!d || typeof d.lat !== "number" || typeof d.lon !== "number") return;
    show(msg.topic.slice("fleet.vehicle.".length), d);
}, { history: 1 });

// "share my position": this page is a vehicle too (its token may publish
// only fleet.vehicle.<its user>).
let shareTimer = null;
let me = { lat: CENTER.lat + (Math.random() - 0.5) * SPAN.lat, lon: CENTER.lon + (Math.random() - 0.5) * SPAN.lon };
$("share").addEventListener("change", (ev) => {
    clearInterval(shareTimer);
    if (!ev.target.checked) return;
    const step = () => {
        me = { lat: me.lat + (Math.random() - 0.5) * 0.0008, lon: me.lon + (Math.random() - 0.5) * 0.0012 };
        client.publish(`fleet.vehicle.${user}`, { ...me, heading: 0, speed: 20, ts: Date.now() }).catch(() => {});
    };
    step();
    shareTimer = setInterval(step, 1000);
});
