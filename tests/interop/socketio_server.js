// A Socket.IO server (npm socket.io), for tests/socketio.rs and the C tests.
//
// usage: node tests/interop/socketio_server.js [--port N] [--transports polling,websocket]
//                                               [--recovery]
// Listens on 127.0.0.1 (port 0 or none: a free one) and prints
// `LISTENING <port>` as its first line. Exits when its stdin closes (the
// test ended) or after 10 minutes.
//
// Namespace "/" (refused with {"reason": ...} when auth.reject is set):
//   echo(...args)            emits "echo" with the same arguments back
//   ack-me(...args, cb)      answers the ack with the same arguments
//   ask(n)                   emits "question"(n) asking for an ack; emits
//                            "answered" with the answer's arguments
//   binary-echo(...args)     emits "binary" with the same arguments (Buffers stay binary)
//   binary-ack(cb)           answers the ack with a 3-byte Buffer [1,2,3]
//   info(cb)                 answers {auth, query, transport, recovered, headers}
//   kick                     disconnects this socket from the namespace
//   drop                     closes the underlying Engine.IO connection
//   broadcast-later(ms, x)   after ms, emits "later"(x) to everyone (kept for recovery)
//   count(cb)                answers the number of connections made so far
// Namespace "/admin" needs auth {"token": "secret"}, else refused with
// data {"code": 401}; it has echo and ack-me too.
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const LIFETIME_MS = 10 * 60 * 1000;
const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
const port = Number(option('--port', '0'));
const transports = option('--transports', 'polling,websocket').split(',');
const recovery = args.includes('--recovery');

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports,
  // Short heartbeats, so that tests of dead links stay short too.
  pingInterval: Number(option('--ping-interval', '2000')),
  pingTimeout: Number(option('--ping-timeout', '2000')),
  maxHttpBufferSize: 4 * 1024 * 1024,
  connectionStateRecovery: recovery
    ? { maxDisconnectionDuration: 60 * 1000, skipMiddlewares: true }
    : undefined,
});

let connections = 0;

function common(socket) {
  socket.on('echo', (...a) => socket.emit('echo', ...a));
  socket.on('ack-me', (...a) => {
    const cb = a.pop();
    if (typeof cb === 'function') cb(...a);
  });
}

io.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.reject) {
    const err = new Error('refused');
    err.data = { reason: String(socket.handshake.auth.reject) };
    return next(err);
  }
  next();
});

io.on('connection', (socket) => {
  connections += 1;
  common(socket);
  socket.on('ask', (n) => {
    socket.emit('question', n, (...answer) => socket.emit('answered', ...answer));
  });
  socket.on('binary-echo', (...a) => socket.emit('binary', ...a));
  socket.on('binary-ack', (cb) => cb(Buffer.from([1, 2, 3])));
  socket.on('info', (cb) =>
    cb({
      auth: socket.handshake.auth,
      query: socket.handshake.query,
      transport: socket.conn.transport.name,
      recovered: socket.recovered,
      headers: socket.handshake.headers,
    })
  );
  socket.on('kick', () => socket.disconnect());
  socket.on('drop', () => socket.conn.close());
  socket.on('broadcast-later', (ms, x) => setTimeout(() => io.emit('later', x), ms));
  socket.on('count', (cb) => cb(connections));
});

const admin = io.of('/admin');
admin.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === 'secret') return next();
  const err = new Error('bad token');
  err.data = { code: 401 };
  next(err);
});
admin.on('connection', (socket) => common(socket));

httpServer.listen(port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), LIFETIME_MS).unref();
