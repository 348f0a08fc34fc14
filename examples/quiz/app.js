// Quiz night: the host's page runs the game (questions, scoring); players
// answer. Presence on the question topic is the lobby; the broker's `from`
// stamp says who answered, so nobody answers for somebody else.
import { $, start } from "/example.js";

const ROOM = "quiz.pub";
const QUESTIONS = [
    { q: "Which protocol upgrades an HTTP connection to full duplex?", options: ["WebSocket", "FTP", "SMTP"], answer: 0 },
    { q: "What does a topic pattern '>' match?", options: ["one token", "the rest of the topic", "nothing"], answer: 1 },
    { q: "Which HTTP status answers a successful upgrade?", options: ["200", "301", "101"], answer: 2 },
];
const { client, user } = await start();
const isHost = user === "host";
let question = null; // {n, q, options, answer?}
let scores = {}; // player -> points
const members = new Map(); // client -> user
let myAnswer = null;

function renderPlayers() {
    const players = [...new Set(members.values())].filter((u) => u && u !== "host").sort();
    $("player-count").textContent = String(players.length);
    $("scores").replaceChildren(...players.map((p) => {
        const li = document.createElement("li");
        li.dataset.player = p;
        li.dataset.score = String(scores[p] ?? 0);
        const name = document.createElement("span");
        name.textContent = p === user ? `${p} (you)` : p;
        const pts = document.createElement("b");
        pts.textContent = String(scores[p] ?? 0);
        li.append(name, pts);
        return li;
    }));
}

function renderQuestion() {
    if (!question) return;
    $("q-title").textContent = `Q${question.n}. ${question.q}`;
    $("options").replaceChildren(...question.options.map((text, i) => {
        const li = document.createElement("li");
        li.dataset.option = String(i);
        if (question.answer === i) li.className = "lead";
        const label = document.createElement("span");
        label.textContent = text + (question.answer === i ? "  ✓" : "");
        li.append(label);
        if (!isHost && myAnswer === null && question.answer === undefined) {
            const b = document.createElement("button");
            b.type = "button";
            b.textContent = "Answer";
            b.addEventListener("click", () => answer(i));
            li.append(b);
        }
        return li;
    }));
}

async function answer(i) {
    myAnswer = i;
    renderQuestion();
    try {
        await client.publish(`${ROOM}.answers`, { n: question.n, option: i });
        $("answer-status").textContent = "Answer sent. Wait for the reveal…";
    } catch (err) {
        $("answer-status").textContent = `Not sent: ${err.message}`;
    }
}

const qsub = client.subscribe(`${ROOM}.question`, (msg) => {
    const d = msg.data || {};
    if (question?.n !== d.n) {
        myAnswer = null;
        $("answer-status").textContent = "";
    }
    question = d;
    if (!isHost && d.answer !== undefined) {
        $("answer-status").textContent = myAnswer === d.answer ? "Right!" : myAnswer === null ? "Time's up." : "Not this time.";
    }
    renderQuestion();
}, { history: 1 });
qsub.on("subscribed", async () => {
    const { members: list } = await client.presence(`${ROOM}.question`);
    members.clear();
    for (const m of list) members.set(m.client, m.user);
    renderPlayers();
});
qsub.on("join", ({ member }) => {
    members.set(member.client, member.user);
    renderPlayers();
});
qsub.on("leave", ({ member }) => {
    members.delete(member.client);
    renderPlayers();
});
client.subscribe(`${ROOM}.scores`, (msg) => {
    scores = msg.data?.scores || {};
    renderPlayers();
}, { history: 1 });

if (isHost) {
    $("host").hidden = false;
    let round = 0;
    let answers = new Map(); // player -> option (first answer counts)
    client.subscribe(`${ROOM}.answers`, (msg) => {
        const who = msg.from?.user;
        if (!who || !question || msg.data?.n !== question.n || question.answer !== undefined || answers.has(who)) return;
        answers.set(who, msg.data.option);
        $("answered").textContent = String(answers.size);
    });
    $("ask").addEventListener("click", () => {
        const q = QUESTIONS[round % QUESTIONS.length];
        round++;
        answers = new Map();
        $("answered").textContent = "0";
        client.publish(`${ROOM}.question`, { n: round, q: q.q, options: q.options }).catch(() => {});
    });
    $("reveal").addEventListener("click", async () => {
        if (!question || question.answer !== undefined) return;
        const right = QUESTIONS[(question.n - 1) % QUESTIONS.length].answer;
        const next = { ...scores };
        for (const [who, option] of answers) if (option === right) next[who] = (next[who] ?? 0) + 1;
        await client.publish(`${ROOM}.scores`, { scores: next }).catch(() => {});
        await client.publish(`${ROOM}.question`, { ...question, answer: right }).catch(() => {});
    });
}
