// A Node `ws` client run by test_ws_node.py against Tycho's server. It runs
// one scenario (argv[3]) on argv[2] (a ws:// URL) and prints the results
// as one JSON line.
"use strict";
const WebSocket = require("ws");

const [url, scenario] = process.argv.slice(2);

function open(path, opts) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url + path, opts);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

function next(ws) {
  return new Promise((resolve, reject) => {
    ws.once("message", (data, isBinary) => resolve({ data, isBinary }));
    ws.once("close", (code) => reject(new Error("closed " + code)));
  });
}

function closed(ws) {
  return new Promise((resolve) => ws.once("close", (code, reason) =>
    resolve({ code, reason: reason.toString() })));
}

const scenarios = {
  async echo() {
    const ws = await open("/echo");
    const out = {};
    ws.send("grüße ✓");
    let m = await next(ws);
    out.text = m.data.toString();
    out.textIsBinary = m.isBinary;
    ws.send(Buffer.from([0, 1, 2, 255]));
    m = await next(ws);
    out.binary = [...m.data];
    out.binaryIsBinary = m.isBinary;
    // one message in three frames
    ws.send("frag-1 ", { fin: false });
    ws.send("frag-2 ", { fin: false });
    ws.send("frag-3", { fin: true });
    out.fragmented = (await next(ws)).data.toString();
    const big = Buffer.alloc(700 * 1024, 7);
    ws.send(big);
    out.bigLength = (await next(ws)).data.length;
    const c = closed(ws);
    ws.close(4100, "node says bye");
    out.close = await c;
    return out;
  },
  async ping() {
    const ws = await open("/echo");
    const pong = new Promise((resolve) => ws.once("pong", (d) => resolve(d.toString())));
    ws.ping("node ping");
    const out = { pong: await pong };
    // The server pings at once: listen before the open event.
    const serverPing = new WebSocket(url + "/ping");
    const gotPing = new Promise((resolve) => serverPing.once("ping", (d) => resolve(d.toString())));
    const report = new Promise((resolve) => serverPing.once("message", (d) => resolve(d.toString())));
    out.serverPing = await gotPing;
    out.report = await report;
    ws.close();
    serverPing.close();
    return out;
  },
  async closecode() {
    const ws = await open("/close");
    const c = closed(ws);
    ws.send("4003 from the server");
    return await c;
  },
  async oversize() {
    const ws = await open("/echo");
    const c = closed(ws);
    ws.send(Buffer.alloc(1024 * 1024 + 10));
    return await c;
  },
  async abrupt() {
    const ws = await open("/echo");
    ws.send("x");
    await next(ws);
    ws.terminate();
    return { terminated: true };
  },
};

scenarios[scenario]().then(
  (out) => { console.log(JSON.stringify(out)); process.exit(0); },
  (err) => { console.error(err.stack || String(err)); process.exit(1); });
