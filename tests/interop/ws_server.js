// A WebSocket server built on Node's `ws`, for tests/interop.rs.
//
// usage: node tests/interop/ws_server.js [PORT]   (0 or none: a free port)
//
// Listens on 127.0.0.1 and prints `LISTENING <port>` as its first line.
// Exits when its stdin closes (the test ended) or after 10 minutes.
//
// Every text or binary message is echoed back as it came, except text
// commands (the protocol is the same in websockets_server.py):
//   cmd:fragment             a text message in 3 fragments, then a 256 KiB
//                            binary message in 4 fragments (fragmentBinary())
//   cmd:ping:PAYLOAD         a Ping with PAYLOAD; on its Pong, answers
//                            `pong:PAYLOAD`, or `no-pong` after 5 s
//   cmd:close:CODE:REASON    closes with that code and reason
//   cmd:protocol             answers `protocol:` and the chosen subprotocol
// Subprotocols: chat.v2 and superchat are accepted; none is required.
'use strict';

const { WebSocketServer } = require('ws');

const SUBPROTOCOLS = ['chat.v2', 'superchat'];
const FRAGMENTED_TEXT = ['frag', 'mented ', 'text \u2713'];
const LIFETIME_MS = 10 * 60 * 1000;
const PONG_TIMEOUT_MS = 5000;

// 4 fragments of 64 KiB; byte i of the message is i % 251.
function fragmentBinary() {
  const whole = Buffer.alloc(256 * 1024);
  for (let i = 0; i < whole.length; i++) whole[i] = i % 251;
  const parts = [];
  for (let at = 0; at < whole.length; at += 64 * 1024) parts.push(whole.subarray(at, at + 64 * 1024));
  return parts;
}

function sendFragments(ws, parts, binary) {
  parts.forEach((part, i) => ws.send(part, { binary, fin: i === parts.length - 1 }));
}

function command(ws, text) {
  const [, name, ...args] = text.split(':');
  switch (name) {
    case 'fragment':
      sendFragments(ws, FRAGMENTED_TEXT, false);
      sendFragments(ws, fragmentBinary(), true);
      break;
    case 'ping': {
      const payload = args.join(':');
      const timer = setTimeout(() => {
        ws.off('pong', onPong);
        ws.send('no-pong');
      }, PONG_TIMEOUT_MS);
      const onPong = (data) => {
        if (data.toString() !== payload) return;
        clearTimeout(timer);
        ws.off('pong', onPong);
        ws.send(`pong:${payload}`);
      };
      ws.on('pong', onPong);
      ws.ping(payload);
      break;
    }
    case 'close':
      ws.close(Number(args[0]), args.slice(1).join(':'));
      break;
    case 'protocol':
      ws.send(`protocol:${ws.protocol}`);
      break;
    default:
      ws.send(`unknown command: ${text}`);
  }
}

const port = Number(process.argv[2] || 0);
const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 64 * 1024 * 1024,
  handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) || false,
});

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length < 256 && data.toString().startsWith('cmd:')) {
      command(ws, data.toString());
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('error', (err) => console.error(`ws_server: ${err.message}`));
});

server.on('listening', () => console.log(`LISTENING ${server.address().port}`));
server.on('error', (err) => {
  console.error(`ws_server: ${err.message}`);
  process.exit(1);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), LIFETIME_MS).unref();
