// A Node `ws` echo server with permessage-deflate for Tycho's client
// (test_ws_deflate_node.py): argv[2] is its perMessageDeflate option as
// JSON. "extensions" asks for the header it answered. Prints "port N".
"use strict";
const WebSocket = require("ws");

const wss = new WebSocket.Server({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: JSON.parse(process.argv[2]),
});
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.toString() === "extensions") {
      const ext = ws._extensions["permessage-deflate"];
      return ws.send(JSON.stringify(ext ? ext.params : null), { compress: false });
    }
    ws.send(data, { binary: isBinary });
  });
});
wss.on("listening", () => console.log("port " + wss.address().port));
