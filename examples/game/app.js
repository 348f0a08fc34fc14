// A multiplayer arena: each player moves a piece on a 20 x 12 grid.
// - Lobby: presence on arena.lobby (the list on subscribe, then join/leave).
// - Moves: each player publishes its own piece on arena.pos.<name>; its token
//   may publish nothing else (JWT permissions), so nobody moves another's
//   piece. The rule conflates moves and keeps the last one: the page
//   subscribes arena.pos.* with history 1 and sees every piece where it is.
// - The referee backend reads the moves and publishes arena.state (the coin
//   and the scores), the only authority on who scored.
import { $, colorOf, start } from "/example.js";

const { client, user } = await start({ connect: { pingInterval: 4000, pingTimeout: 3000, reconnect: { maxDelay: 3000 } } });
const SVG = "http://www.w3.org/2000/svg";
const COLS = 20;
const ROWS = 12;
const CELL = 50;
const members = new Map(); // client id -> user name (the lobby)
const pieces = new Map(); // user -> {x, y}
let state = { coin: null, scores: {} };

function hash(name) {
    let h = 7;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h;
}
// Where a player starts: a fixed cell per name.
let me = { x: hash(user) % COLS, y: (hash(user) >>> 8) % ROWS };
pieces.set(user, me);

(function drawGrid() {
    const g = $("grid");
    for (let x = 0; x <= COLS; x++) {
        const l = document.createElementNS(SVG, "line");
        Object.entries({ x1: x * CELL, y1: 0, x2: x * CELL, y2: ROWS * CELL }).forEach(([k, v]) => l.setAttribute(k, v));
        g.append(l);
    }
    for (let y = 0; y <= ROWS; y++) {
        const l = document.createElementNS(SVG, "line");
        Object.entries({ x1: 0, y1: y * CELL, x2: COLS * CELL, y2: y * CELL }).forEach(([k, v]) => l.setAttribute(k, v));
        g.append(l);
    }
})();

const online = () => new Set(members.values());

function render() {
    const here = online();
    here.add(user);
    // Pieces of the players in the lobby, where they last moved.
    const layer = $("pieces");
    for (const el of [...layer.children]) if (!here.has(el.dataset.player) || !pieces.has(el.dataset.player)) el.remove();
    for (const name of here) {
        const pos = pieces.get(name);
        if (!pos) continue;
        let el = layer.querySelector(`[data-player="${CSS.escape(name)}"]`);
        if (!el) {
            el = document.createElementNS(SVG, "g");
            el.setAttribute("class", name === user ? "piece mine" : "piece");
            el.dataset.player = name;
            const c = document.createElementNS(SVG, "circle");
            c.setAttribute("r", 19);
            c.setAttribute("fill", colorOf(name));
            const t = document.createElementNS(SVG, "text");
            t.textContent = name;
            el.append(c, t);
            layer.append(el);
        }
        el.dataset.x = String(pos.x);
        el.dataset.y = String(pos.y);
        const [c, t] = el.children;
        c.setAttribute("cx", pos.x * CELL + CELL / 2);
        c.setAttribute("cy", pos.y * CELL + CELL / 2);
        t.setAttribute("x", pos.x * CELL + CELL / 2);
        t.setAttribute("y", pos.y * CELL - 4);
    }
    const coin = $("coin");
    if (state.coin) {
        coin.setAttribute("cx", state.coin.x * CELL + CELL / 2);
        coin.setAttribute("cy", state.coin.y * CELL + CELL / 2);
        coin.dataset.x = String(state.coin.x);
        coin.dataset.y = String(state.coin.y);
    }
    // The lobby with the referee's scores.
    const names = [...here].sort();
    $("player-count").textContent = String(names.length);
    $("players").replaceChildren(...names.map((name) => {
        const li = document.createElement("li");
        li.dataset.player = name;
        li.dataset.score = String(state.scores[name] ?? 0);
        const who = document.createElement("span");
        who.textContent = name === user ? `${name} (you)` : name;
        who.style.color = colorOf(name);
        const score = document.createElement("b");
        score.textContent = `${state.scores[name] ?? 0} ●`;
        li.append(who, score);
        return li;
    }));
}

const lobby = client.subscribe("arena.lobby", () => {});
lobby.on("subscribed", async () => {
    try {
        const { members: list } = await client.presence("arena.lobby");
        members.clear();
        for (const m of list) if (m.user) members.set(m.client, m.user);
        render();
    } catch (err) {
        if (err.code !== "disconnected") throw err;
    }
});
lobby.on("join", ({ member }) => {
    if (member.user) members.set(member.client, member.user);
    render();
});
lobby.on("leave", ({ member }) => {
    members.delete(member.client);
    render();
});

client.subscribe("arena.pos.*", (msg) => {
    const name = msg.topic.slice("arena.pos.".length);
    const d = msg.data;
    if (name === user || !d || !Number.isInteger(d.x) || !Number.isInteger(d.y)) return; // mine: this page knows
    pieces.set(name, { x: d.x, y: d.y });
    render();
}, { history: 1 });

client.subscribe("arena.state", (msg) => {
    if (msg.data && typeof msg.data === "object") state = { coin: msg.data.coin ?? null, scores: msg.data.scores ?? {} };
    render();
}, { history: 1 });

function publishMe() {
    client.publish(`arena.pos.${user}`, { x: me.x, y: me.y }).catch(() => {});
}
// On every (re)connection the piece is put where it is.
client.on("open", publishMe);

const STEPS = { up: [0, -1], down: [0, 1], left: [-1, 0], right: [1, 0] };
function move(dir) {
    const [dx, dy] = STEPS[dir];
    me = { x: Math.max(0, Math.min(COLS - 1, me.x + dx)), y: Math.max(0, Math.min(ROWS - 1, me.y + dy)) };
    pieces.set(user, me);
    render();
    publishMe();
}
const KEYS = { ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right", w: "up", s: "down", a: "left", d: "right" };
document.addEventListener("keydown", (ev) => {
    const dir = KEYS[ev.key];
    if (!dir || ev.target instanceof HTMLInputElement) return;
    ev.preventDefault();
    move(dir);
});
for (const b of document.querySelectorAll(".pad button")) b.addEventListener("click", () => move(b.dataset.move));
render();
