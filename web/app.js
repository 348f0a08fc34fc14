// The demo page: a chat (chat.*), a ticker (demo.ticker.*), a feed of
// everything under demo.> and the connection's vital signs, all on one
// WebSocket through the JS client (clients/js/wsbroker.js, copied to
// web/js/wsbroker.js by the build). Plain ES module, no build step.

const $ = (id) => document.getElementById(id);

function banner(html) {
  const el = $("banner");
  el.innerHTML = html;
  el.hidden = false;
}

let wsb;
try {
  wsb = await import("./js/wsbroker.js");
} catch (err) {
  banner(
    "The JS client <code>/js/wsbroker.js</code> is missing from the web root. " +
      "Build with <code>make build</code> (it copies <code>clients/js/wsbroker.js</code> into <code>web/js/</code>).",
  );
  throw err;
}

for (const el of document.querySelectorAll(".origin")) el.textContent = location.origin;

// A dev token (tools/dev/dev_token.py NAME, development only) names this
// page's user: the broker then stamps that name on what it publishes and shows
// it in the room's presence. Without one the page is an anonymous guest.
const TOKEN_KEY = "wsb-demo-token";
const devToken = localStorage.getItem(TOKEN_KEY) || undefined;
const client = wsb.connect("/ws", { token: devToken, reconnect: { minDelay: 300, maxDelay: 5000 } });
// For the browser console (and the browser test, which waits for `subscriptions` to be active).
const subscriptions = [];
window.wsbDemo = { client, wsb, subscriptions, roomSubscription: () => roomSub };

// ---------------------------------------------------------------- connection

const counters = { received: 0, published: 0, second: 0 };
const rateHistory = new Array(60).fill(0);
let everOpened = false;
let lossAnnounced = false; // one chat line per outage, not one per failed attempt

function showState(state, detail) {
  const pill = $("conn-state");
  pill.dataset.state = state;
  pill.querySelector("b").textContent = detail || state;
  $("st-state").textContent = state;
}

client.on("state", (state) => showState(state));
client.on("open", (welcome) => {
  showState("open");
  $("st-client").textContent = welcome.client_id;
  $("st-client").title = welcome.client_id;
  $("conn-node").textContent = `node ${welcome.node_id} · v${welcome.version}`;
  $("st-reconnects").textContent = String(client.stats.reconnects);
  showIdentity(welcome);
  if (everOpened) chatSystem("reconnected — subscriptions restored");
  everOpened = true;
  lossAnnounced = false;
  pingNow();
});
client.on("disconnect", ({ code, reconnectIn }) => {
  showState("connecting", `reconnecting in ${(reconnectIn / 1000).toFixed(1)} s`);
  if (everOpened && !lossAnnounced) {
    lossAnnounced = true;
    chatSystem(`connection lost (${code}); reconnecting…`);
  }
  $("st-rtt").textContent = "–";
});
client.on("close", () => showState("closed"));
client.on("error", (err) => {
  if (err.code === "invalid_token" || err.code === "token_expired") {
    banner(
      `The broker refused the dev token (${err.code}). Mint another with ` +
        "<code>tools/dev/dev_token.py NAME</code> or sign out in the chat box.",
    );
    $("token-clear").hidden = false;
  }
});
client.on("message", () => {
  counters.received++;
  counters.second++;
});

async function pingNow() {
  if (client.state !== "open") return;
  try {
    const rtt = await client.ping();
    $("st-rtt").textContent = rtt < 10 ? `${rtt.toFixed(2)} ms` : `${Math.round(rtt)} ms`;
  } catch {
    $("st-rtt").textContent = "–";
  }
}
setInterval(pingNow, 5000);

function publish(topic, data) {
  return client.publish(topic, data).then(
    (ack) => {
      counters.published++;
      return ack;
    },
    (err) => {
      console.warn(`publish to ${topic} failed: ${err.code}: ${err.message}`);
      throw err;
    },
  );
}

// --------------------------------------------------------------------- chat

const ROOMS = ["lobby", "random", "dev"];
const rooms = new Map(ROOMS.map((r) => [r, { messages: [], unread: 0 }]));
let room = "lobby";
const hashRoom = /^#room=([\w-]{1,32})$/.exec(location.hash);
if (hashRoom) room = hashRoom[1];
if (!rooms.has(room)) rooms.set(room, { messages: [], unread: 0 });

const nameInput = $("chat-name");
nameInput.value = localStorage.getItem("wsb-demo-name") || `guest-${Math.floor(1000 + Math.random() * 9000)}`;
nameInput.addEventListener("change", () => {
  nameInput.value = nameInput.value.trim().slice(0, 24) || "guest";
  localStorage.setItem("wsb-demo-name", nameInput.value);
});

function hue(s) {
  let h = 0;
  for (const ch of s) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

function hhmm(ts) {
  const d = new Date(typeof ts === "number" ? ts : Date.now());
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

function renderRooms() {
  const nav = $("rooms");
  nav.replaceChildren();
  for (const [name, r] of rooms) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `# ${name}`;
    b.setAttribute("aria-current", String(name === room));
    if (r.unread > 0 && name !== room) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = r.unread > 99 ? "99+" : String(r.unread);
      b.append(badge);
    }
    b.addEventListener("click", () => switchRoom(name));
    nav.append(b);
  }
}

function messageItem(m) {
  const li = document.createElement("li");
  if (m.system) {
    li.className = "msg system";
    li.textContent = `— ${m.text} —`;
    return li;
  }
  li.className = "msg" + (m.mine ? " mine" : "");
  const av = document.createElement("div");
  av.className = "avatar";
  av.style.background = `hsl(${hue(m.user)} 70% 68%)`;
  av.textContent = (m.user.trim()[0] || "?").toUpperCase();
  const body = document.createElement("div");
  const head = document.createElement("div");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = m.user;
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = hhmm(m.ts);
  head.append(who);
  if (m.verified) {
    const v = document.createElement("span");
    v.className = "verified";
    v.textContent = "✓";
    v.title = "name stamped by the broker from the publisher's token";
    head.append(v);
  }
  head.append(when);
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = m.text;
  body.append(head, text);
  li.append(av, body);
  return li;
}

function renderChat() {
  const list = $("chat-messages");
  const r = rooms.get(room);
  list.replaceChildren(...r.messages.map(messageItem));
  if (r.messages.length === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = `No messages in #${room} yet. Say hi, or open this page in a second tab.`;
    list.append(li);
  }
  list.scrollTop = list.scrollHeight;
  $("chat-topic").textContent = `chat.${room}`;
}

function addChat(roomName, m) {
  if (!rooms.has(roomName)) rooms.set(roomName, { messages: [], unread: 0 });
  const r = rooms.get(roomName);
  r.messages.push(m);
  if (r.messages.length > 200) r.messages.shift();
  if (roomName === room) {
    const list = $("chat-messages");
    const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    list.querySelector(".empty")?.remove();
    list.append(messageItem(m));
    while (list.children.length > 200) list.firstChild.remove();
    if (stick || m.mine) list.scrollTop = list.scrollHeight;
  } else if (!m.system) {
    r.unread++;
    renderRooms();
  }
}

function chatSystem(text) {
  addChat(room, { system: true, text, ts: Date.now() });
}

function switchRoom(name) {
  room = name;
  rooms.get(room).unread = 0;
  history.replaceState(null, "", `#room=${room}`);
  renderRooms();
  renderChat();
  joinRoom();
  renderTyping();
}

// Who wrote a message: the broker's `from` stamp (topic rule publisher:true)
// names a user with a token; a guest's (or an HTTP publisher's) name is
// whatever it put in `data.user`, shown without the check mark.
function author(msg, d) {
  const mine = msg.from ? msg.from.client === client.welcome?.client_id : undefined;
  if (msg.from?.user) return { user: msg.from.user, verified: true, mine };
  const user = d && typeof d === "object" && d.user != null ? String(d.user) : "anonymous";
  return { user, verified: false, mine: mine ?? user === nameInput.value };
}

// One wildcard subscription feeds every room (and the unread badges).
subscriptions.push(client.subscribe("chat.*", (msg) => {
  const roomName = msg.topic.slice("chat.".length);
  const d = msg.data;
  const who = author(msg, d);
  const m =
    d && typeof d === "object" && !Array.isArray(d)
      ? { ...who, text: String(d.text ?? JSON.stringify(d)), ts: Number(d.ts) || Date.now() }
      : { ...who, text: typeof d === "string" ? d : JSON.stringify(d), ts: Date.now() };
  addChat(roomName, m);
  typingStopped(roomName, msg.from?.client);
}));

$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("chat-text");
  const text = input.value.trim();
  if (!text) return;
  publish(`chat.${room}`, { user: nameInput.value, text, ts: Date.now() }).catch((err) =>
    chatSystem(`not sent: ${err.message}`),
  );
  input.value = "";
  sendTyping(false);
});

// -------------------------------------------------------- chat: who is online
//
// The page is a member of the room it shows: an exact subscription to
// chat.<room> (the chat.* pattern above makes no member). presence() gives
// the list once the broker acknowledged it (again after every reconnect),
// join/leave events keep it current. Members are connections: one user with
// two tabs is one name with "×2".

let roomSub = null;
const online = new Map(); // client id -> user (null for a guest)
let presenceOn = true;

async function refreshPresence(topic) {
  try {
    const { members } = await client.presence(topic);
    if (topic !== `chat.${room}`) return;
    online.clear();
    for (const m of members) online.set(m.client, m.user);
    presenceOn = true;
  } catch (err) {
    if (topic !== `chat.${room}`) return;
    // not_available: the broker's topic rules do not enable presence here.
    presenceOn = err.code !== "not_available" ? presenceOn : false;
  }
  renderOnline();
}

function joinRoom() {
  const topic = `chat.${room}`;
  if (roomSub?.topic === topic) return;
  roomSub?.unsubscribe().catch(() => {}); // the socket dropped: nothing left to remove
  online.clear();
  renderOnline();
  const sub = client.subscribe(topic, () => {}); // messages come through chat.*
  roomSub = sub;
  sub.on("subscribed", () => refreshPresence(topic));
  sub.on("join", ({ member }) => {
    online.set(member.client, member.user);
    renderOnline();
  });
  sub.on("leave", ({ member }) => {
    online.delete(member.client);
    typingStopped(room, member.client);
    renderOnline();
  });
}

function renderOnline() {
  const list = $("chat-online");
  if (!presenceOn) {
    $("chat-online-count").textContent = "(presence is off for this room)";
    list.replaceChildren();
    return;
  }
  const me = client.welcome?.client_id;
  const names = new Map(); // name -> {tabs, me}
  for (const [id, user] of online) {
    const name = user ?? `guest ${id.slice(-4)}`;
    const e = names.get(name) || { tabs: 0, me: false };
    e.tabs++;
    e.me ||= id === me;
    names.set(name, e);
  }
  $("chat-online-count").textContent = String(names.size);
  list.replaceChildren(
    ...[...names].sort(([a], [b]) => a.localeCompare(b)).map(([name, e]) => {
      const li = document.createElement("li");
      li.className = e.me ? "me" : "";
      li.textContent = e.me ? `${name} (you)` : name;
      li.dataset.user = name;
      if (e.tabs > 1) {
        const tabs = document.createElement("span");
        tabs.className = "tabs";
        tabs.textContent = `×${e.tabs}`;
        li.append(tabs);
      }
      return li;
    }),
  );
}

// -------------------------------------------------------- chat: who is typing
//
// chat.<room>.typing carries {typing: true|false}; the broker stamps who
// (rule publisher:true). A typist sends `true` at most every TYPING_EVERY ms
// while keys are pressed and `false` after TYPING_IDLE ms without a key, on
// send, or when leaving the room; a reader forgets a typist TYPING_TTL ms
// after its last `true` (a lost `false`, a closed tab).
const TYPING_EVERY = 2000;
const TYPING_IDLE = 3000;
const TYPING_TTL = 5000;
const typists = new Map(); // "room client" -> {room, client, name, until}
let typingSentAt = 0;
let typingRoom = null;
let typingIdleTimer = null;

function sendTyping(on) {
  clearTimeout(typingIdleTimer);
  typingIdleTimer = null;
  if (on) {
    if (typingRoom !== room) sendTyping(false);
    typingIdleTimer = setTimeout(() => sendTyping(false), TYPING_IDLE);
    if (typingRoom === room && Date.now() - typingSentAt < TYPING_EVERY) return;
    typingRoom = room;
    typingSentAt = Date.now();
    publish(`chat.${room}.typing`, { typing: true, user: nameInput.value }).catch(() => {});
  } else if (typingRoom !== null) {
    const was = typingRoom;
    typingRoom = null;
    typingSentAt = 0;
    publish(`chat.${was}.typing`, { typing: false, user: nameInput.value }).catch(() => {});
  }
}

$("chat-text").addEventListener("input", (ev) => sendTyping(ev.target.value.trim() !== ""));

function typingStopped(roomName, clientId) {
  if (clientId && typists.delete(`${roomName} ${clientId}`)) renderTyping();
}

subscriptions.push(client.subscribe("chat.*.typing", (msg) => {
  const roomName = msg.topic.split(".")[1];
  const d = msg.data && typeof msg.data === "object" ? msg.data : {};
  const id = msg.from?.client;
  if (!id || id === client.welcome?.client_id) return;
  const key = `${roomName} ${id}`;
  if (d.typing === true) {
    const name = msg.from.user ?? String(d.user ?? "a guest");
    typists.set(key, { room: roomName, client: id, name, until: Date.now() + TYPING_TTL });
  } else {
    typists.delete(key);
  }
  renderTyping();
}));

function renderTyping() {
  const now = Date.now();
  const names = [];
  for (const [key, t] of typists) {
    if (t.until <= now) typists.delete(key);
    else if (t.room === room && !names.includes(t.name)) names.push(t.name);
  }
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  const el = $("chat-typing");
  if (el.textContent !== text) el.textContent = text;
}
setInterval(renderTyping, 1000);

// ------------------------------------------------------------ chat: identity

function showIdentity(welcome) {
  const status = $("token-status");
  if (welcome.user) {
    nameInput.value = welcome.user;
    nameInput.readOnly = true;
    nameInput.title = "your name, from your token";
    status.textContent = `signed in as ${welcome.user} (dev token)`;
    $("dev-token").hidden = true;
    $("token-use").hidden = true;
    $("token-clear").hidden = false;
  } else {
    status.textContent = "no token: your name is unverified";
  }
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("dev-token").value.trim();
  if (!value) return;
  localStorage.setItem(TOKEN_KEY, value);
  location.reload(); // connect again, as that user
});

$("token-clear").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  location.reload();
});

window.addEventListener("pagehide", () => sendTyping(false));

joinRoom();

renderRooms();
renderChat();

// ------------------------------------------------------------------- ticker

const SEED = { btc: 64000, eth: 3400, sol: 150, doge: 0.16 };
const symbols = new Map();
let selected = "btc";
let dirty = true;

function fmtPrice(p) {
  if (p >= 1000) return p.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  if (p >= 1) return p.toFixed(2);
  return p.toPrecision(4);
}

function symbolCard(name) {
  let s = symbols.get(name);
  if (s) return s;
  const el = document.createElement("button");
  el.type = "button";
  el.className = "sym";
  el.dataset.symbol = name;
  el.innerHTML = `<div class="sym-name"></div><div class="price">–</div><div class="chg">&nbsp;</div><canvas></canvas>`;
  el.querySelector(".sym-name").textContent = name;
  el.addEventListener("click", () => {
    selected = name;
    for (const x of symbols.values()) x.el.setAttribute("aria-pressed", String(x.name === selected));
    dirty = true;
  });
  el.setAttribute("aria-pressed", String(name === selected));
  $("symbols").append(el);
  s = { name, el, history: [], first: undefined, last: undefined };
  symbols.set(name, s);
  return s;
}
for (const name of Object.keys(SEED)) symbolCard(name);

subscriptions.push(client.subscribe("demo.ticker.*", (msg) => {
  const name = msg.topic.slice("demo.ticker.".length);
  const d = msg.data;
  const price = typeof d === "number" ? d : Number(d?.price);
  if (!Number.isFinite(price)) return;
  const s = symbolCard(name);
  const prev = s.last;
  if (s.first === undefined) s.first = price;
  s.last = price;
  s.history.push(price);
  if (s.history.length > 150) s.history.shift();
  const priceEl = s.el.querySelector(".price");
  priceEl.textContent = fmtPrice(price);
  if (prev !== undefined && prev !== price) {
    priceEl.classList.remove("flash-up", "flash-down");
    void priceEl.offsetWidth; // restart the transition
    priceEl.classList.add(price > prev ? "flash-up" : "flash-down");
    setTimeout(() => priceEl.classList.remove("flash-up", "flash-down"), 120);
  }
  const chg = ((price - s.first) / s.first) * 100;
  const chgEl = s.el.querySelector(".chg");
  chgEl.textContent = `${chg >= 0 ? "▲" : "▼"} ${Math.abs(chg).toFixed(2)}%`;
  chgEl.className = `chg ${chg >= 0 ? "up" : "down"}`;
  if (!symbols.get(selected)?.history.length) selected = name;
  dirty = true;
}));

function sizeCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w: canvas.clientWidth, h: canvas.clientHeight };
}

function drawLine(canvas, values, { color, fill, grid }) {
  const { ctx, w, h } = sizeCanvas(canvas);
  ctx.clearRect(0, 0, w, h);
  if (values.length < 2) return;
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-9) {
    hi += Math.abs(hi) * 0.001 || 1;
    lo -= Math.abs(lo) * 0.001 || 1;
  }
  const padTop = grid ? 14 : 2;
  const padBottom = grid ? 18 : 2;
  const padRight = grid ? 72 : 0;
  const x = (i) => (i / (values.length - 1)) * (w - padRight);
  const y = (v) => padTop + (1 - (v - lo) / (hi - lo)) * (h - padTop - padBottom);
  if (grid) {
    ctx.strokeStyle = "rgba(139, 152, 169, .12)";
    ctx.fillStyle = "rgba(139, 152, 169, .8)";
    ctx.font = "11px ui-monospace, monospace";
    ctx.lineWidth = 1;
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((hi - lo) * k) / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(0, yy);
      ctx.lineTo(w - padRight, yy);
      ctx.stroke();
      ctx.fillText(fmtPrice(v), w - padRight + 8, yy + 4);
    }
  }
  ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.strokeStyle = color;
  ctx.lineWidth = grid ? 2 : 1.5;
  ctx.lineJoin = "round";
  ctx.stroke();
  if (fill) {
    ctx.lineTo(x(values.length - 1), h - padBottom);
    ctx.lineTo(0, h - padBottom);
    ctx.closePath();
    const g = ctx.createLinearGradient(0, padTop, 0, h);
    g.addColorStop(0, fill);
    g.addColorStop(1, "rgba(0,0,0,0)");
    ctx.fillStyle = g;
    ctx.fill();
  }
  if (grid) {
    const last = values[values.length - 1];
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(x(values.length - 1), y(last), 3.5, 0, Math.PI * 2);
    ctx.fill();
  }
}

function drawTicker() {
  for (const s of symbols.values()) {
    const up = s.last === undefined || s.last >= s.first;
    drawLine(s.el.querySelector("canvas"), s.history.slice(-40), { color: up ? "#34d399" : "#f87171" });
  }
  const s = symbols.get(selected);
  const values = s ? s.history : [];
  $("chart-empty").hidden = values.length >= 2;
  const up = !s || s.last === undefined || s.last >= s.first;
  drawLine($("chart"), values, {
    color: up ? "#5eead4" : "#f87171",
    fill: up ? "rgba(94, 234, 212, .28)" : "rgba(248, 113, 113, .25)",
    grid: true,
  });
}

// The simulated feed: a random walk per symbol, published from this page.
let feedTimer = null;
const walk = { ...SEED };
function feedTick() {
  if (client.state !== "open") return;
  for (const name of Object.keys(walk)) {
    const base = symbols.get(name)?.last ?? walk[name];
    const next = Math.max(base * (1 + (Math.random() - 0.5) * 0.004), 1e-6);
    walk[name] = next;
    publish(`demo.ticker.${name}`, { price: Number(next.toPrecision(8)) }).catch(() => {});
  }
}
function setFeed(on) {
  clearInterval(feedTimer);
  feedTimer = on ? setInterval(feedTick, 250) : null;
  $("feed-toggle").checked = on;
}
$("feed-toggle").addEventListener("change", (ev) => setFeed(ev.target.checked));
if (new URLSearchParams(location.search).get("feed") === "1") setFeed(true);

// --------------------------------------------------------------------- feed

const showTicks = $("feed-ticks");
const feed = $("feed");

function feedEmpty() {
  if (feed.children.length === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "Nothing on demo.> yet.";
    feed.append(li);
  }
}

subscriptions.push(client.subscribe("demo.>", (msg) => {
  if (msg.topic.startsWith("demo.ticker.") && !showTicks.checked) return;
  feed.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  const cells = [
    ["time", new Date().toLocaleTimeString([], { hour12: false })],
    ["t", msg.topic],
    ["s", `#${msg.seq}`],
    ["d", JSON.stringify(msg.data)],
  ];
  for (const [cls, text] of cells) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    if (cls === "d") span.title = text;
    li.append(span);
  }
  feed.prepend(li);
  while (feed.children.length > 100) feed.lastChild.remove();
}));
feedEmpty();

$("feed-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const topic = $("feed-topic").value.trim();
  const raw = $("feed-data").value;
  if (!topic) return;
  let data;
  try {
    data = JSON.parse(raw);
  } catch {
    data = { text: raw };
  }
  publish(topic, data).catch((err) => {
    const el = $("banner");
    el.textContent = `Publish to ${topic} failed (${err.code}): ${err.message}`;
    el.hidden = false;
    setTimeout(() => (el.hidden = true), 6000);
  });
  $("feed-data").value = "";
});

// -------------------------------------------------------------------- stats

function drawRate() {
  const { ctx, w, h } = sizeCanvas($("rate-chart"));
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(5, ...rateHistory);
  const bw = w / rateHistory.length;
  rateHistory.forEach((v, i) => {
    const bh = Math.max(v > 0 ? 2 : 1, (v / max) * (h - 4));
    ctx.fillStyle = i === rateHistory.length - 1 ? "#5eead4" : "rgba(96, 165, 250, .55)";
    ctx.fillRect(i * bw + 1, h - bh, Math.max(1, bw - 2), bh);
  });
}

setInterval(() => {
  rateHistory.push(counters.second);
  rateHistory.shift();
  $("st-rate").textContent = String(counters.second);
  counters.second = 0;
  drawRate();
}, 1000);

function frame() {
  $("st-received").textContent = counters.received.toLocaleString("en-US");
  $("st-published").textContent = counters.published.toLocaleString("en-US");
  if (dirty) {
    dirty = false;
    drawTicker();
  }
  requestAnimationFrame(frame);
}
window.addEventListener("resize", () => {
  dirty = true;
  drawRate();
});
drawRate();
requestAnimationFrame(frame);
document.body.dataset.ready = "1";
