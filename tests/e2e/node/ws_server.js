// A Node `ws` server for the Tycho client tests (test_ws_node.py): echoes,
// answers "close CODE REASON" by closing, picks the first subprotocol it
// knows. Prints "port N" once listening.
"use strict";
const WebSocket = require("ws");

const wss = new WebSocket.Server({
  host: "127.0.0.1",
  port: 0,
  handleProtocols: (protocols) => (protocols.has("json.v1") ? "json.v1" : false),
});
wss.on("connection", (ws, req) => {
  if (req.url === "/protocol") ws.send("protocol=" + ws.protocol);
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    const m = text && text.match(/^close (\d+) ?(.*)$/);
    if (m) return ws.close(Number(m[1]), m[2]);
    if (text === "headers") return ws.send(JSON.stringify(req.headers));
    ws.send(data, { binary: isBinary });
  });
});
wss.on("listening", () => console.log("port " + wss.address().port));
