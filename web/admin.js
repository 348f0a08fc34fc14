// admin.js - the /admin dashboard (PROTOCOL.md 16): signs in with an admin
// key or admin token, kept in sessionStorage and sent with every API call;
// live charts from $sys.node.*.stats over a WebSocket (the admin token, or
// anonymously with a key: the default permissions serve $sys.node.>); the
// topic and connection tables (GET /api/topics, /api/connections, every
// REFRESH_MS) with a disconnect button; health from /healthz.
import { connect } from "/js/wsbroker.js";

const REFRESH_MS = 2000;
const POINTS = 60; // samples kept per series
const COLORS = ["#5eead4", "#60a5fa", "#fbbf24", "#f472b6", "#a78bfa", "#34d399", "#f87171", "#fb923c"];
const KEY = "wsbroker-admin-credential";

const $ = (id) => document.getElementById(id);
// What the page shows, for people and for the browser test.
const state = (window.admin = { credential: null, stats: 0, series: {}, refreshes: 0, client: null, timer: null });

function esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function api(path, init = {}) {
    const headers = { Authorization: `Bearer ${state.credential}`, ...(init.headers || {}) };
    const res = await fetch(path, { ...init, headers, cache: "no-store" });
    let body = null;
    try {
        body = await res.json();
    } catch {
        body = null;
    }
    return { status: res.status, body };
}

function banner(text) {
    $("banner").hidden = !text;
    $("banner").textContent = text || "";
}

function setPill(s, label) {
    $("conn-state").dataset.state = s;
    $("conn-state").querySelector("b").textContent = label;
}

// ---- charts -----------------------------------------------------------------------------------

function push(name, value) {
    const s = (state.series[name] ||= []);
    s.push(Number(value) || 0);
    if (s.length > POINTS) s.shift();
}

function draw(canvasId, legendId, names) {
    const canvas = $(canvasId);
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = w * dpr;
    canvas.height = h * dpr;
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    let max = 1;
    for (const n of names) for (const v of state.series[n] || []) max = Math.max(max, v);
    g.strokeStyle = "#243044";
    g.lineWidth = 1;
    g.fillStyle = "#8b98a9";
    g.font = "11px system-ui, sans-serif";
    for (let i = 0; i <= 4; i++) {
        const y = 8 + ((h - 24) * i) / 4;
        g.beginPath();
        g.moveTo(36, y);
        g.lineTo(w - 4, y);
        g.stroke();
        g.fillText(String(Math.round((max * (4 - i)) / 4)), 2, y + 4);
    }
    const legend = [];
    names.forEach((n, i) => {
        const s = state.series[n] || [];
        const color = COLORS[i % COLORS.length];
        g.strokeStyle = color;
        g.lineWidth = n.includes("/w") ? 1 : 2;
        g.setLineDash(n.endsWith(" out") ? [5, 4] : []);
        g.beginPath();
        s.forEach((v, k) => {
            const x = 36 + ((w - 40) * (k + POINTS - s.length)) / (POINTS - 1);
            const y = 8 + (h - 24) * (1 - v / max);
            if (k === 0) g.moveTo(x, y);
            else g.lineTo(x, y);
        });
        g.stroke();
        legend.push(`<span><i style="background:${color}"></i>${esc(n)} ${esc(s.length ? s[s.length - 1] : "")}</span>`);
    });
    g.setLineDash([]);
    $(legendId).innerHTML = legend.join("");
}

function onStats(msg) {
    const d = msg.data || {};
    const node = d.node || msg.topic.split(".")[2];
    state.stats++;
    push(`${node} connections`, d.connections);
    push(`${node} in`, d.messages_in_per_s);
    push(`${node} out`, d.messages_out_per_s);
    for (const wk of d.workers || []) {
        push(`${node}/w${wk.worker} in`, wk.messages_in_per_s);
        push(`${node}/w${wk.worker} out`, wk.messages_out_per_s);
    }
    const names = Object.keys(state.series);
    draw("chart-conns", "legend-conns", names.filter((n) => n.endsWith(" connections")));
    draw("chart-msgs", "legend-msgs", names.filter((n) => n.endsWith(" in") || n.endsWith(" out")));
}

function openStats() {
    const jwt = state.credential.split(".").length === 3;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    const c = connect(url, jwt ? { token: state.credential } : {});
    state.client = c;
    c.on("open", () => setPill("open", "live"));
    c.on("disconnect", () => setPill("connecting", "reconnecting"));
    c.subscribe("$sys.node.*.stats", onStats);
}

// ---- tables and health ------------------------------------------------------------------------

function renderTopics(body) {
    $("topics").tBodies[0].innerHTML = body.topics
        .map((t) => `<tr><td><code>${esc(t.topic)}</code></td><td class="num">${t.subscribers}</td>` +
            `<td>${t.rule ? `<code>${esc(t.rule)}</code>` : '<span class="muted">–</span>'}</td>` +
            `<td class="num">${t.seq ?? "–"}</td></tr>`)
        .join("");
    $("topics-note").textContent = `${body.topics.length}${body.truncated ? "+ (truncated)" : ""} · nodes ${body.nodes.join(", ")}`;
}

function renderConnections(body) {
    $("conns").tBodies[0].innerHTML = body.connections
        .map((c) => `<tr data-client="${esc(c.client)}"><td><code>${esc(c.client)}</code></td>` +
            `<td>${c.user ? esc(c.user) : '<span class="muted">anonymous</span>'}</td><td>${esc(c.addr)}</td>` +
            `<td class="num">${c.subscriptions}</td><td class="num">${c.queued_bytes}</td>` +
            `<td class="num">${c.age_s}s</td><td>${esc(c.node)}</td>` +
            `<td><button type="button" class="disconnect" data-client="${esc(c.client)}">Disconnect</button></td></tr>`)
        .join("");
    $("conns-note").textContent = `${body.connections.length}${body.next ? "+ (first page)" : ""}`;
}

async function refresh() {
    try {
        const [topics, conns, health] = await Promise.all([
            api("/api/topics"), api("/api/connections?limit=200"), fetch("/healthz", { cache: "no-store" }).then((r) => r.json()),
        ]);
        if (topics.status === 401 || topics.status === 403) return signOut("the credential was refused");
        if (topics.status === 200) renderTopics(topics.body);
        if (conns.status === 200) renderConnections(conns.body);
        $("h-status").textContent = health.status;
        $("h-redis").textContent = health.redis;
        $("h-node").textContent = health.node_id;
        $("conn-node").textContent = health.node_id;
        $("h-uptime").textContent = `${Math.round(health.uptime_s)} s`;
        $("h-conns").textContent = health.connections;
        $("h-workers").textContent = `${health.workers.filter((w) => w.alive).length} / ${health.workers.length}`;
        state.refreshes++;
        banner("");
    } catch (e) {
        banner(`refresh failed: ${e.message}`);
    }
}

async function disconnectClient(client) {
    const r = await api("/api/disconnect", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ client }),
    });
    banner(r.status === 200 ? "" : `disconnect failed: ${r.status}`);
    await refresh();
}

// ---- sign in / out ----------------------------------------------------------------------------

async function signIn(credential) {
    state.credential = credential;
    const r = await api("/api/topics");
    if (r.status !== 200) {
        state.credential = null;
        $("login-error").hidden = false;
        $("login-error").textContent = r.status === 403 ? "this key or token is not an admin's (403)"
            : r.status === 401 ? "unknown key or invalid token (401)" : `error ${r.status}`;
        sessionStorage.removeItem(KEY);
        return;
    }
    sessionStorage.setItem(KEY, credential);
    $("login").hidden = true;
    $("dash").hidden = false;
    $("logout").hidden = false;
    $("login-error").hidden = true;
    renderTopics(r.body);
    openStats();
    await refresh();
    state.timer = setInterval(refresh, REFRESH_MS);
}

function signOut(why) {
    sessionStorage.removeItem(KEY);
    clearInterval(state.timer);
    state.client?.close();
    state.client = null;
    state.credential = null;
    $("dash").hidden = true;
    $("login").hidden = false;
    $("logout").hidden = true;
    setPill("closed", "signed out");
    if (why) {
        $("login-error").hidden = false;
        $("login-error").textContent = why;
    }
}

$("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("admin-key").value.trim();
    if (v) signIn(v);
});
$("logout").addEventListener("click", () => signOut());
$("conns").addEventListener("click", (e) => {
    const b = e.target.closest("button.disconnect");
    if (b) {
        b.disabled = true;
        disconnectClient(b.dataset.client);
    }
});
const saved = sessionStorage.getItem(KEY);
if (saved) signIn(saved);
window.adminReady = true;
