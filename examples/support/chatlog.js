// A conversation view shared by the customer's and the agent's pages.
import { colorOf } from "/example.js";

export function addMessage(list, msg, myClient) {
    const who = msg.from?.user ?? "support";
    const li = document.createElement("li");
    li.className = msg.from?.client === myClient ? "msg mine" : "msg";
    li.dataset.user = who;
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.style.background = colorOf(who);
    avatar.textContent = who.slice(0, 1).toUpperCase();
    const body = document.createElement("div");
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = String(msg.data?.text ?? "");
    body.append(name, text);
    li.append(avatar, body);
    list.querySelector(".empty")?.remove();
    list.append(li);
    list.scrollTop = list.scrollHeight;
}
