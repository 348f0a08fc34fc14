// Whiteboard: a stroke is one message ({points: [[x, y]…] in 0..1, color,
// width}, or {clear: true}) on board.team.strokes, whose history is the
// drawing: the page subscribes with history and folds what it gets; a
// reconnect resumes with `since`. Cursors ride on board.team.cursors
// (conflated, no history: only where they are now matters).
import { $, colorOf, start } from "/example.js";

const STROKES = "board.team.strokes";
const CURSORS = "board.team.cursors";
const { client, user } = await start();
const canvas = $("board");
const ctx = canvas.getContext("2d");
const myColor = colorOf(user).replace("72%", "45%");
let strokes = [];

function drawStroke(s) {
    if (!Array.isArray(s.points) || s.points.length === 0) return;
    ctx.strokeStyle = String(s.color || "#111");
    ctx.lineWidth = Number(s.width) || 4;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    s.points.forEach(([x, y], i) => {
        const px = x * canvas.width;
        const py = y * canvas.height;
        if (i === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
    });
    if (s.points.length === 1) ctx.lineTo(s.points[0][0] * canvas.width + 0.1, s.points[0][1] * canvas.height);
    ctx.stroke();
}

function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const s of strokes) drawStroke(s);
    $("stroke-count").textContent = String(strokes.length);
    canvas.dataset.strokes = String(strokes.length);
}

client.subscribe(STROKES, (msg) => {
    const d = msg.data || {};
    if (d.clear) strokes = [];
    else strokes.push({ ...d, by: msg.from?.user });
    redraw();
}, { history: 2000 });

// Drawing: points in 0..1 of the canvas, so every screen size agrees.
let current = null;
function pos(ev) {
    const r = canvas.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height))]
        .map((v) => Math.round(v * 10000) / 10000);
}
canvas.addEventListener("pointerdown", (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    current = { points: [pos(ev)], color: myColor, width: 4 };
});
let lastCursor = 0;
canvas.addEventListener("pointermove", (ev) => {
    const p = pos(ev);
    if (current) {
        current.points.push(p);
        drawStroke({ ...current, points: current.points.slice(-2) });
    }
    if (Date.now() - lastCursor > 50) {
        lastCursor = Date.now();
        client.publish(CURSORS, { x: p[0], y: p[1] }).catch(() => {});
    }
});
function finish() {
    if (!current) return;
    const stroke = current;
    current = null;
    // Shown when the broker echoes it back, in the board's one order.
    client.publish(STROKES, stroke).catch(() => redraw());
}
canvas.addEventListener("pointerup", finish);
canvas.addEventListener("pointercancel", finish);
$("clear").addEventListener("click", () => client.publish(STROKES, { clear: true }).catch(() => {}));

// Other people's cursors.
const cursors = new Map(); // client id -> element
client.subscribe(CURSORS, (msg) => {
    const id = msg.from?.client;
    if (!id || id === client.welcome?.client_id) return;
    let el = cursors.get(id);
    if (!el) {
        el = document.createElement("span");
        el.className = "cursor";
        el.dataset.user = msg.from.user ?? "";
        el.textContent = msg.from.user ?? "guest";
        el.style.background = colorOf(msg.from.user ?? id);
        $("cursors").append(el);
        cursors.set(id, el);
    }
    el.style.left = `${Number(msg.data?.x) * 100}%`;
    el.style.top = `${Number(msg.data?.y) * 100}%`;
});
redraw();
