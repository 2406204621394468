// A Node `ws` client with permessage-deflate, run by test_ws_deflate_node.py
// against Tycho's server: argv[2] is a ws:// URL, argv[3] the
// perMessageDeflate options as JSON. It sends large, fragmented, binary and
// small messages (twice each, so context takeover is exercised), checks the
// echoes and prints one JSON line.
"use strict";
const WebSocket = require("ws");

const [url, optsJson] = process.argv.slice(2);
const pmd = JSON.parse(optsJson);

function next(ws) {
  return new Promise((resolve, reject) => {
    ws.once("message", (data, isBinary) => resolve({ data, isBinary }));
    ws.once("close", (code) => reject(new Error("closed " + code)));
  });
}

function json(n) {
  const items = [];
  for (let i = 0; i < n; i++) items.push({ id: i, name: "star " + (i % 97), mag: (i * 7) % 13 });
  return JSON.stringify(items);
}

async function main() {
  const ws = new WebSocket(url, { perMessageDeflate: pmd });
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  const ext = ws._extensions["permessage-deflate"];
  const out = { extensions: ws.extensions, params: ext ? ext.params : null, checks: [] };
  let wire = 0;
  ws._socket.on("data", (d) => { wire += d.length; });
  const text = json(3000); // about 120 KB
  const bin = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 31) % 251;
  for (let round = 0; round < 2; round++) {
    ws.send(text);
    let m = await next(ws);
    out.checks.push(m.data.toString() === text && !m.isBinary);
    ws.send(bin);
    m = await next(ws);
    out.checks.push(Buffer.compare(m.data, bin) === 0 && m.isBinary);
    ws.send(text.slice(0, 40000), { fin: false });
    ws.send(text.slice(40000, 80000), { fin: false });
    ws.send(text.slice(80000), { fin: true });
    m = await next(ws);
    out.checks.push(m.data.toString() === text);
    ws.send("small ✓");
    m = await next(ws);
    out.checks.push(m.data.toString() === "small ✓");
  }
  out.wire = wire;
  const closed = new Promise((resolve) => ws.once("close", (code) => resolve(code)));
  ws.close(1000);
  out.close = await closed;
  return out;
}

main().then(
  (out) => { console.log(JSON.stringify(out)); process.exit(0); },
  (err) => { console.error(err.stack || String(err)); process.exit(1); });
