// The benchmark's Node client: the `ws` package (npm), run by examples/bench.rs.
//
//   node client.js URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW
//
// Speaks the protocol of every benchmark client (bench/README.md): each
// workload once at a tenth of its size (warm-up), then measured; one JSON
// line per result on stdout. A wrong or missing echo exits non-zero.
'use strict';

const WebSocket = require('ws');

const SMALL = 64;
const LARGE = 1 << 20;
const LIMIT_MS = 120000;
const TEXT = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_';
const TEXT_BYTES = Buffer.from(TEXT);
const BIG = Buffer.alloc(LARGE);
for (let i = 0; i < LARGE; i++) BIG[i] = i % 251;

const args = process.argv.slice(2);
if (args.length !== 6) {
  console.error('usage: client.js URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW');
  process.exit(2);
}
const url = args[0];
const [rtt, pipe, pipeWindow, large, largeWindow] = args.slice(1).map((a) => {
  const n = Number(a);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`bad argument ${a}`);
  return n;
});

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function check(data, isBinary, size) {
  if (data.length !== size || isBinary !== (size !== SMALL)) {
    throw new Error('echo of the wrong kind or length');
  }
  const same = size === SMALL
    ? data.equals(TEXT_BYTES)
    : data[0] === BIG[0] && data[size - 1] === BIG[size - 1];
  if (!same) throw new Error('echo with other bytes');
}

// Runs `body(ws, done, fail)` on a fresh connection until it calls done.
async function onConnection(what, body) {
  const ws = await open();
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what} timed out`)), LIMIT_MS);
      const done = (v) => { clearTimeout(timer); resolve(v); };
      const fail = (e) => { clearTimeout(timer); reject(e); };
      ws.on('error', fail);
      ws.on('close', () => fail(new Error(`${what}: the connection closed`)));
      body(ws, done, fail);
    });
  } finally {
    ws.removeAllListeners('close');
    ws.close();
  }
}

function roundTrips(n) {
  return onConnection('rtt', (ws, done, fail) => {
    const samples = new Float64Array(n);
    let i = 0;
    let t0 = process.hrtime.bigint();
    ws.on('message', (data, isBinary) => {
      samples[i++] = Number(process.hrtime.bigint() - t0) / 1e3;
      try { check(data, isBinary, SMALL); } catch (e) { fail(e); return; }
      if (i === n) { done(samples); return; }
      t0 = process.hrtime.bigint();
      ws.send(TEXT);
    });
    ws.send(TEXT);
  });
}

function stream(size, n, window) {
  const payload = size === SMALL ? TEXT : BIG;
  return onConnection('stream', (ws, done, fail) => {
    let sent = 0;
    let got = 0;
    const start = process.hrtime.bigint();
    const pump = () => {
      while (sent < n && sent - got < window) { ws.send(payload); sent++; }
    };
    ws.on('message', (data, isBinary) => {
      try { check(data, isBinary, size); } catch (e) { fail(e); return; }
      if (++got === n) done(Number(process.hrtime.bigint() - start) / 1e9);
      else pump();
    });
    pump();
  });
}

const cpuSecs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const emit = (v) => process.stdout.write(`${JSON.stringify(v)}\n`);

async function main() {
  emit({ version: `ws ${require('ws/package.json').version} (node ${process.version})` });
  const warm = (n) => Math.max(1, Math.floor(n / 10));
  await roundTrips(warm(rtt));
  await stream(SMALL, warm(pipe), pipeWindow);
  await stream(LARGE, warm(large), largeWindow);

  const s = Array.from(await roundTrips(rtt)).sort((a, b) => a - b);
  emit({
    workload: 'rtt', n: rtt, p50_us: s[Math.floor(rtt / 2)],
    p99_us: s[Math.min(rtt - 1, Math.floor((rtt * 99) / 100))],
  });
  for (const [workload, size, n, window] of [
    ['pipelined', SMALL, pipe, pipeWindow], ['large', LARGE, large, largeWindow]]) {
    const cpu = cpuSecs();
    const secs = await stream(size, n, window);
    emit({ workload, n, secs, cpu_secs: cpuSecs() - cpu });
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(`node client: ${e.stack || e}`);
  process.exit(1);
});
