// WebRTC signalling: offers, answers and ICE candidates are messages on the
// peer's private inbox, signal.<name>; the sender is the broker's stamp
// (msg.from.user), so a callee knows who calls. The lobby is presence on
// signal.lobby. The call is a data channel, browser to browser.
import { $, start } from "/example.js";

const { client, user } = await start();
const members = new Map(); // client -> user
let pc = null;
let channel = null;
let peer = null;

function setState(state, text) {
    $("call-state").dataset.state = state;
    $("call-state").textContent = text;
    const open = state === "connected";
    $("text").disabled = !open;
    $("send").disabled = !open;
}

function line(text, mine) {
    const li = document.createElement("li");
    li.className = mine ? "msg mine p2p" : "msg p2p";
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    li.append(document.createElement("span"), body);
    $("messages").querySelector(".empty")?.remove();
    $("messages").append(li);
}

function renderLobby() {
    const others = [...new Set(members.values())].filter((u) => u && u !== user).sort();
    $("lobby").replaceChildren(...others.map((name) => {
        const li = document.createElement("li");
        li.dataset.user = name;
        const b = document.createElement("b");
        b.textContent = name;
        const call = document.createElement("button");
        call.type = "button";
        call.textContent = "Call";
        call.addEventListener("click", () => callUser(name));
        li.append(b, call);
        return li;
    }));
}

const send = (to, data) => client.publish(`signal.${to}`, data).catch(() => {});

function newPeer(name) {
    pc?.close();
    peer = name;
    pc = new RTCPeerConnection({ iceServers: [] }); // same network: host candidates are enough
    pc.onicecandidate = (ev) => {
        if (ev.candidate) send(name, { kind: "ice", candidate: ev.candidate.toJSON() });
    };
    pc.onconnectionstatechange = () => {
        if (pc.connectionState === "failed" || pc.connectionState === "closed") setState("idle", "call ended");
    };
    pc.ondatachannel = (ev) => useChannel(ev.channel);
    return pc;
}

function useChannel(ch) {
    channel = ch;
    ch.onopen = () => setState("connected", `connected to ${peer}, peer to peer`);
    ch.onmessage = (ev) => line(`${peer}: ${ev.data}`, false);
    ch.onclose = () => setState("idle", "call ended");
}

async function callUser(name) {
    setState("calling", `calling ${name}…`);
    const conn = newPeer(name);
    useChannel(conn.createDataChannel("chat"));
    await conn.setLocalDescription(await conn.createOffer());
    send(name, { kind: "offer", sdp: conn.localDescription.toJSON() });
}

client.subscribe(`signal.${user}`, async (msg) => {
    const from = msg.from?.user;
    const d = msg.data || {};
    if (!from) return;
    if (d.kind === "offer") {
        setState("calling", `${from} is calling…`);
        const conn = newPeer(from);
        await conn.setRemoteDescription(d.sdp);
        await conn.setLocalDescription(await conn.createAnswer());
        send(from, { kind: "answer", sdp: conn.localDescription.toJSON() });
    } else if (from === peer && pc && d.kind === "answer") {
        await pc.setRemoteDescription(d.sdp);
    } else if (from === peer && pc && d.kind === "ice") {
        await pc.addIceCandidate(d.candidate).catch(() => {});
    }
});

const lobby = client.subscribe("signal.lobby", () => {});
lobby.on("subscribed", async () => {
    const { members: list } = await client.presence("signal.lobby");
    members.clear();
    for (const m of list) members.set(m.client, m.user);
    renderLobby();
});
lobby.on("join", ({ member }) => {
    members.set(member.client, member.user);
    renderLobby();
});
lobby.on("leave", ({ member }) => {
    members.delete(member.client);
    renderLobby();
});

$("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("text").value.trim();
    if (!text || channel?.readyState !== "open") return;
    channel.send(text);
    line(`${user}: ${text}`, true);
    $("text").value = "";
});
