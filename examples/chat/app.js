// Chat: one room (chat.lobby) on the broker, no server code in the path.
// - history: the subscribe asks for the last 50 messages, a reconnect
//   resumes with `since` (the client does it), so nothing is shown twice;
// - presence + join/leave: who is online, kept current by events;
// - publisher stamp: the author is the broker's `from.user` (from the token),
//   not something the sender could make up;
// - typing: chat.lobby.typing carries {typing: true|false}.
import { $, colorOf, start, timeOf } from "/example.js";

const ROOM = "chat.lobby";
const TYPING = `${ROOM}.typing`;
const { client, user } = await start();

// ------------------------------------------------------------------ messages
function addLine(li) {
    const list = $("messages");
    list.querySelector(".empty")?.remove();
    list.append(li);
    list.scrollTop = list.scrollHeight;
}

function system(text) {
    const li = document.createElement("li");
    li.className = "msg system";
    li.textContent = text;
    addLine(li);
}

function showMessage(msg) {
    const d = msg.data && typeof msg.data === "object" ? msg.data : { text: String(msg.data) };
    const who = msg.from?.user ?? "anonymous";
    const li = document.createElement("li");
    li.className = msg.from?.client === client.welcome?.client_id ? "msg mine" : "msg";
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.style.background = colorOf(who);
    avatar.textContent = who.slice(0, 1).toUpperCase();
    const body = document.createElement("div");
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = timeOf(Number(d.ts) || Date.now());
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = String(d.text ?? "");
    body.append(name, when, text);
    li.append(avatar, body);
    addLine(li);
}

const room = client.subscribe(ROOM, (msg) => {
    showMessage(msg);
    typingStopped(msg.from?.client);
}, { history: 50 });

$("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("text");
    const text = input.value.trim();
    if (!text) return;
    client.publish(ROOM, { text, ts: Date.now() }).catch((err) => system(`not sent: ${err.message}`));
    input.value = "";
    sendTyping(false);
});

// -------------------------------------------------------------------- online
// Members are connections; a user with two tabs is one name.
const members = new Map(); // client id -> user

function usersOnline() {
    return new Set(members.values());
}

function renderOnline() {
    const names = [...usersOnline()].sort();
    $("online-count").textContent = String(names.length);
    $("online").replaceChildren(...names.map((name) => {
        const li = document.createElement("li");
        li.dataset.user = name;
        li.textContent = name === user ? `${name} (you)` : name;
        return li;
    }));
}

room.on("subscribed", async () => {
    // After every (re)subscribe: the list as the broker has it now.
    try {
        const { members: list } = await client.presence(ROOM);
        members.clear();
        for (const m of list) members.set(m.client, m.user);
        renderOnline();
    } catch (err) {
        system(`who is online: ${err.message}`);
    }
});
room.on("join", ({ member }) => {
    const was = usersOnline().has(member.user);
    members.set(member.client, member.user);
    if (!was && member.user !== user) system(`${member.user} joined`);
    renderOnline();
});
room.on("leave", ({ member }) => {
    members.delete(member.client);
    typingStopped(member.client);
    if (!usersOnline().has(member.user) && member.user !== user) system(`${member.user} left`);
    renderOnline();
});

// -------------------------------------------------------------------- typing
const TYPING_EVERY = 2000; // resend "typing" at most this often
const TYPING_IDLE = 3000; // "stopped" after this long without a key
const TYPING_STALE = 8000; // forget a typist whose "stopped" was lost
let typingSentAt = 0;
let idleTimer = null;

function sendTyping(on) {
    clearTimeout(idleTimer);
    if (on) {
        idleTimer = setTimeout(() => sendTyping(false), TYPING_IDLE);
        if (Date.now() - typingSentAt < TYPING_EVERY) return;
        typingSentAt = Date.now();
    } else {
        if (typingSentAt === 0) return;
        typingSentAt = 0;
    }
    client.publish(TYPING, { typing: on }).catch(() => {});
}
$("text").addEventListener("input", () => sendTyping($("text").value !== ""));

const typists = new Map(); // client id -> {user, timer}
function typingStopped(id) {
    const t = typists.get(id);
    if (!t) return;
    clearTimeout(t.timer);
    typists.delete(id);
    renderTyping();
}
function renderTyping() {
    const names = [...new Set([...typists.values()].map((t) => t.user))];
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    $("typing").textContent = text;
}
client.subscribe(TYPING, (msg) => {
    const id = msg.from?.client;
    if (!id || id === client.welcome?.client_id) return;
    typingStopped(id);
    if (msg.data?.typing === true) {
        typists.set(id, { user: msg.from.user, timer: setTimeout(() => typingStopped(id), TYPING_STALE) });
        renderTyping();
    }
});
