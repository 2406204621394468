// The chat page's script. ?name=NAME joins under that name (else it asks);
// ?say=TEXT sends TEXT once joined (the end-to-end test drives the page
// this way). The last message received is also kept in #status.
"use strict";
const params = new URLSearchParams(location.search);
const name = params.get("name") || prompt("Your name?") || "anonymous";
const log = document.getElementById("log");
const status = document.getElementById("status");
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");

function line(text, cls) {
  const p = document.createElement("div");
  p.textContent = text;
  if (cls) p.className = cls;
  log.appendChild(p);
  log.scrollTop = log.scrollHeight;
}

ws.onopen = () => {
  ws.send(JSON.stringify({ type: "join", name }));
  status.textContent = "joined as " + name;
  if (params.get("say")) ws.send(JSON.stringify({ type: "say", text: params.get("say") }));
};
ws.onmessage = (ev) => {
  const msg = JSON.parse(ev.data);
  if (msg.type === "message") {
    line(msg.from + ": " + msg.text);
    status.textContent = "received: " + msg.from + ": " + msg.text;
  } else {
    line(msg.name + " " + msg.type + " (" + msg.count + " here)", "system");
  }
};
ws.onclose = (ev) => { status.textContent = "closed (" + ev.code + ")"; };
document.getElementById("form").onsubmit = (ev) => {
  ev.preventDefault();
  const input = document.getElementById("text");
  if (input.value) ws.send(JSON.stringify({ type: "say", text: input.value }));
  input.value = "";
};
