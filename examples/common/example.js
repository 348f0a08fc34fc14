// Shared by the example pages: sign in with a name (the backend mints a dev
// token for it), connect the JS client with getToken (so token refresh and
// reconnects just work), and keep the connection pill of the top bar current.
//
//   import { start } from "/example.js";
//   const { client, user, config } = await start();

import { connect } from "/js/wsbroker.js";

export const $ = (id) => document.getElementById(id);

/** The name this browser signed in with (per tab: sessionStorage), or asks for one. */
function askName() {
    const saved = sessionStorage.getItem("wsb-example-user");
    if (saved) return Promise.resolve(saved);
    const form = $("signin");
    form.hidden = false;
    const input = form.querySelector("input");
    input.focus();
    return new Promise((resolve) => {
        form.addEventListener("submit", (ev) => {
            ev.preventDefault();
            const name = input.value.trim();
            if (!/^[A-Za-z0-9._-]{1,32}$/.test(name)) {
                form.querySelector(".error").textContent = "1 to 32 letters, digits, '.', '_' or '-'";
                return;
            }
            sessionStorage.setItem("wsb-example-user", name);
            form.hidden = true;
            resolve(name);
        });
    });
}

async function fetchToken(user, extra = {}) {
    const query = new URLSearchParams({ ...extra, user });
    const res = await fetch(`/api/token?${query}`);
    if (!res.ok) throw new Error(`sign-in refused: ${res.status}`);
    return (await res.json()).token;
}

function showState(state) {
    const pill = $("conn-state");
    if (!pill) return;
    pill.dataset.state = state;
    pill.querySelector("b").textContent = state;
}

/**
 * Signs in (options.signIn false: anonymous) and connects (options.connect:
 * more options of connect(), e.g. a shorter pingInterval; options.tokenQuery:
 * more parameters of /api/token, e.g. {role: "device"}). Resolves with
 * {client, user, config, getToken} as soon as the client exists (not waiting
 * for open); getToken() mints a fresh token, e.g. for the backend's own API.
 */
export async function start(options = {}) {
    const config = await (await fetch("/config.json")).json();
    const user = options.signIn === false ? null : await askName();
    if (user && $("me")) $("me").textContent = user;
    const client = connect(config.ws, {
        ...(options.connect || {}),
        ...(user ? { getToken: () => fetchToken(user, options.tokenQuery) } : {}),
    });
    client.on("state", showState);
    client.on("close", () => showState("closed"));
    client.on("error", (err) => {
        const banner = $("banner");
        if (banner) {
            banner.textContent = `connection refused: ${err.message}`;
            banner.hidden = false;
        }
    });
    client.on("open", () => {
        const banner = $("banner");
        if (banner) banner.hidden = true;
    });
    return { client, user, config, getToken: () => fetchToken(user, options.tokenQuery) };
}

/** A stable pastel colour for a name (the demo page's avatars). */
export function colorOf(name) {
    let h = 0;
    for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
    return `hsl(${h} 70% 72%)`;
}

export function timeOf(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
