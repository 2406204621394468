// Load generator for bench/ws.py, on Node's `ws` client (neither server's
// code). Modes:
//   echo PORT CONNS SECONDS       -> {"roundtrips": N, "seconds": S}
//   broadcast PORT CLIENTS ROUNDS -> {"fanout_ms": [per round]}
// Each echo connection sends a 32-byte message and waits for it back,
// again and again. A broadcast round: one member sends "go"; the round
// ends when every member has received "tick".
"use strict";
const WebSocket = require("../tests/e2e/node/node_modules/ws");
const [mode, port, nArg, tArg] = process.argv.slice(2);
const n = Number(nArg);

function connect(path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

async function connectMany(path, count) {
  const out = [];
  for (let i = 0; i < count; i += 250) {
    const batch = [];
    for (let k = i; k < Math.min(count, i + 250); k++) batch.push(connect(path));
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

(mode === "echo" ? echo() : broadcast()).then(
  (out) => { console.log(JSON.stringify(out)); process.exit(0); },
  (err) => { console.error(err.stack || String(err)); process.exit(1); });
