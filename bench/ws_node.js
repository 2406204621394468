// The WebSocket benchmark's Node server (bench/ws.py), the same two routes
// as bench/ws_app.lua, on the `ws` package. Prints "port N".
"use strict";
const WebSocket = require("../tests/e2e/node/node_modules/ws");

const room = new Set();
const wss = new WebSocket.Server({ host: "127.0.0.1", port: 0, backlog: 4096 });
wss.on("connection", (ws, req) => {
  if (req.url === "/echo") {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  room.add(ws);
  ws.on("message", (data) => {
    if (data.toString() === "go") for (const m of room) m.send("tick");
  });
  ws.on("close", () => room.delete(ws));
});
wss.on("listening", () => console.log("port " + wss.address().port));
