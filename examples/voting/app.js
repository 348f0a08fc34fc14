// Voting: the page shows the tally from the stream (poll.next.tally, the
// last one first, then each new one) and votes with POST /api/vote and its
// token; the backend decides whether the vote counts.
import { $, start } from "/example.js";

const { client, getToken } = await start();
const TALLY = "poll.next.tally";
let poll = null;
let tally = null;

async function api(path, options = {}) {
    const token = await getToken();
    const res = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
}

function render() {
    if (!poll) return;
    $("question").textContent = poll.question;
    const total = tally?.total ?? 0;
    $("total").textContent = String(total);
    $("choices").replaceChildren(...Object.entries(poll.choices).map(([key, label]) => {
        const n = tally?.counts?.[key] ?? 0;
        const li = document.createElement("li");
        li.dataset.choice = key;
        li.dataset.count = String(n);
        li.className = poll.my_vote === key ? "mine" : "";
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.style.width = `${total ? (100 * n) / total : 0}%`;
        const name = document.createElement("span");
        name.textContent = poll.my_vote === key ? `${label} (your vote)` : label;
        const right = document.createElement("span");
        right.className = "actions";
        const count = document.createElement("b");
        count.className = "count";
        count.textContent = String(n);
        right.append(count);
        if (!poll.my_vote) {
            const b = document.createElement("button");
            b.type = "button";
            b.textContent = "Vote";
            b.addEventListener("click", () => vote(key));
            right.prepend(b);
        }
        right.style.display = "flex";
        right.style.gap = "10px";
        right.style.alignItems = "center";
        li.append(bar, name, right);
        return li;
    }));
}

async function vote(choice) {
    const { status, body } = await api("/api/vote", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ choice }),
    });
    const el = $("vote-status");
    if (status === 200) {
        el.textContent = "Your vote is counted.";
        el.className = "status-good small";
    } else {
        el.textContent = `Not counted: ${body.error}`;
        el.className = "status-bad small";
    }
    if (body.my_vote) poll.my_vote = body.my_vote;
    render();
}

client.subscribe(TALLY, (msg) => {
    tally = msg.data;
    render();
}, { history: 1 });

const { status, body } = await api("/api/poll");
if (status === 200) {
    poll = body;
    render();
}
