// Load generator for bench/ws.py, on Node's `ws` client (neither server's
// code). Modes:
//   echo PORT CONNS SECONDS       -> {"roundtrips": N, "seconds": S}
//   broadcast PORT CLIENTS ROUNDS -> {"fanout_ms": [per round]}
//   json PORT CONNS SECONDS PATH  -> {"roundtrips": N, "seconds": S, "wire_bytes": B}
// json echoes a 10 KB JSON document instead, with permessage-deflate
// offered (ws's defaults) and counts the bytes both ways on the sockets.
// Each echo connection sends a 32-byte message and waits for it back,
// again and again. A broadcast round: one member sends "go"; the round
// ends when every member has received "tick".
"use strict";
const WebSocket = require("../tests/e2e/node/node_modules/ws");
const [mode, port, nArg, tArg] = process.argv.slice(2);
const n = Number(nArg);

function connect(path, deflate = false) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: deflate });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

async function connectMany(path, count, deflate = false) {
  const out = [];
  for (let i = 0; i < count; i += 250) {
    const batch = [];
    for (let k = i; k < Math.min(count, i + 250); k++) batch.push(connect(path, deflate));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

async function echo() {
  const conns = await connectMany("/echo", n);
  const msg = "x".repeat(32);
  let count = 0;
  let running = true;
  const t0 = process.hrtime.bigint();
  for (const ws of conns) {
    ws.on("message", () => {
      count++;
      if (running) ws.send(msg);
    });
    ws.send(msg);
  }
  await new Promise((r) => setTimeout(r, Number(tArg) * 1000));
  running = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const ws of conns) ws.terminate();
  return { roundtrips: count, seconds: secs };
}

async function broadcast() {
  const conns = await connectMany("/room", n);
  const rounds = Number(tArg);
  const times = [];
  let pending = 0;
  let done = null;
  for (const ws of conns) {
    ws.on("message", () => {
      if (--pending === 0) done();
    });
  }
  for (let r = 0; r < rounds; r++) {
    pending = conns.length;
    const finished = new Promise((resolve) => { done = resolve; });
    const t0 = process.hrtime.bigint();
    conns[0].send("go");
    await finished;
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  for (const ws of conns) ws.terminate();
  return { fanout_ms: times };
}

// 10 KB of JSON like an API's list response; each document of the pool
// has its own pseudo-random ids and values, so that context takeover does
// not find the whole previous message again.
function document10k(seed) {
  let x = seed * 2654435761 % 4294967296 + 1;
  const rnd = (m) => { x = (x * 1103515245 + 12345) % 2147483648; return x % m; };
  const items = [];
  while (JSON.stringify(items).length < 10240) {
    items.push({ id: rnd(1000000), name: `user${rnd(100000)}`, active: rnd(3) !== 0,
      score: rnd(100000) / 100, tags: ["red", "green", "blue"].slice(rnd(3)) });
  }
  return JSON.stringify(items).slice(0, 10240);
}

async function json() {
  const conns = await connectMany(process.argv[6], n, true);
  const pool = Array.from({ length: 64 }, (_, i) => document10k(i));
  let count = 0;
  let running = true;
  const start = conns.map((ws) => ws._socket.bytesRead + ws._socket.bytesWritten);
  const t0 = process.hrtime.bigint();
  for (const ws of conns) {
    ws.on("message", () => {
      count++;
      if (running) ws.send(pool[count % pool.length]);
    });
    ws.send(pool[0]);
  }
  await new Promise((r) => setTimeout(r, Number(tArg) * 1000));
  running = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  let wire = 0;
  conns.forEach((ws, i) => { wire += ws._socket.bytesRead + ws._socket.bytesWritten - start[i]; });
  for (const ws of conns) ws.terminate();
  return { roundtrips: count, seconds: secs, wire_bytes: wire, message_bytes: pool[0].length };
}

const modes = { echo, broadcast, json };
modes[mode]().then(
  (out) => { console.log(JSON.stringify(out)); process.exit(0); },
  (err) => { console.error(err.stack || String(err)); process.exit(1); });
