// A small node app for phased: each phased child runs one of these and
// forwards its requests to it. No framework, no npm install: node's own
// http module.
//
// Where to listen: phased puts the path of a unix socket its child owns in
// PHASED_APP_SOCKET (app.listen: socket, the default), or a free loopback
// port in PORT (app.listen: port).
//
// How to stop: once its child has drained, phased sends the app its
// app.stop_signal (TERM here). The app says goodbye to its WebSockets
// (close code 1001, "going away": the browser reconnects, to the new
// children), stops taking connections, lets the requests it has finish
// (server.close), and exits 0; phased kills it after app.stop_timeout if
// it has not.
//
// /ws is a WebSocket that echoes every message, written with node's own
// modules (RFC 6455's handshake and frames) so that the example needs no
// npm install; a real app would use the ws package or socket.io.
'use strict';
const crypto = require('crypto');
const http = require('http');

const started = new Date();
let served = 0;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  served++;
  switch (url.pathname) {
    case '/': {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><title>phased + node</title>
<h1>phased + node</h1>
<p>node ${process.version}, process ${process.pid}, child slot ${process.env.PHASED_SLOT},
generation ${process.env.PHASED_GENERATION}; ${served} requests since ${started.toISOString()}.</p>
<p><a href="/api/hello?name=you">/api/hello</a> &middot; <a href="/slow?ms=2000">/slow?ms=2000</a></p>
<p>WebSocket /ws: <input id="msg" value="hi"> <button id="send">send</button></p>
<pre id="log"></pre>
<script>
const log = (m) => { document.getElementById('log').textContent += m + '\\n'; };
let ws;
const connect = () => {
  ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  ws.onmessage = (e) => log('< ' + e.data);
  ws.onclose = (e) => { log('closed (' + e.code + '); reconnecting'); setTimeout(connect, 1000); };
};
connect();
document.getElementById('send').onclick = () => ws.send(document.getElementById('msg').value);
</script>
`);
      return;
    }
    case '/api/hello': {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({
        hello: url.searchParams.get('name') || 'world',
        pid: process.pid,
        slot: Number(process.env.PHASED_SLOT),
        generation: Number(process.env.PHASED_GENERATION),
      }) + '\n');
      return;
    }
    case '/slow': {
      // A long request: it still completes when its child retires meanwhile.
      const ms = Math.min(Number(url.searchParams.get('ms')) || 1000, 30000);
      setTimeout(() => {
        res.setHeader('Content-Type', 'text/plain');
        res.end(`slept ${ms} ms in process ${process.pid}\n`);
      }, ms);
      return;
    }
    default:
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain');
      res.end('not found\n');
  }
});

// Behind phased, the client's keep-alive is phased's business; the app's
// connections are phased's own, reused across requests.
server.keepAliveTimeout = 60 * 1000;

// The WebSockets open, for the goodbye on TERM.
const sockets = new Set();

server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  if (new URL(req.url, 'http://app').pathname !== '/ws' || (req.headers.upgrade || '').toLowerCase() !== 'websocket' || !key) {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  socket.on('error', () => socket.destroy());
  send(socket, 0x81, `hello from process ${process.pid}, generation ${process.env.PHASED_GENERATION}`);
  let buf = Buffer.from(head);
  socket.on('data', (d) => { buf = frames(socket, Buffer.concat([buf, d])); });
});

// send writes one frame: first is its first byte (FIN and opcode).
function send(socket, first, payload) {
  const data = Buffer.from(payload);
  let head;
  if (data.length < 126) {
    head = Buffer.from([first, data.length]);
  } else if (data.length < 65536) {
    head = Buffer.from([first, 126, 0, 0]);
    head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = first;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  socket.write(Buffer.concat([head, data]));
}

// frames answers the whole frames at buf's start (a message is echoed
// frame by frame, a ping gets its pong, a close its close) and returns
// what is left of buf.
function frames(socket, buf) {
  for (;;) {
    if (buf.length < 2) return buf;
    let len = buf[1] & 0x7f;
    let off = 2;
    if (len === 126) {
      if (buf.length < 4) return buf;
      len = buf.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (buf.length < 10) return buf;
      len = Number(buf.readBigUInt64BE(2));
      off = 10;
    }
    if (!(buf[1] & 0x80) || len > 16 << 20) { // a client masks its frames; 16 MiB at most
      socket.destroy();
      return Buffer.alloc(0);
    }
    if (buf.length < off + 4 + len) return buf;
    const mask = buf.subarray(off, off + 4);
    const data = Buffer.from(buf.subarray(off + 4, off + 4 + len));
    for (let i = 0; i < data.length; i++) data[i] ^= mask[i & 3];
    const first = buf[0];
    buf = buf.subarray(off + 4 + len);
    switch (first & 0x0f) {
      case 0x0: case 0x1: case 0x2: send(socket, first, data); break; // echo
      case 0x9: send(socket, 0x8a, data); break; // ping: pong
      case 0x8: send(socket, 0x88, data.subarray(0, 2)); socket.end(); return Buffer.alloc(0); // close
    }
  }
}

const where = process.env.PHASED_APP_SOCKET || Number(process.env.PORT) || 3000;
const listening = typeof where === 'number' ? server.listen(where, '127.0.0.1') : server.listen(where);
listening.on('listening', () => console.log(`app ${process.pid}: listening on ${where}`));

process.on('SIGTERM', () => {
  console.log(`app ${process.pid}: SIGTERM, closing after ${served} requests and ${sockets.size} WebSockets`);
  for (const socket of sockets) { // 1001: going away
    send(socket, 0x88, Buffer.from([0x03, 0xe9]));
    socket.end();
    setTimeout(() => socket.destroy(), 2000).unref(); // a client that does not close its side
  }
  // Stop accepting; end idle kept-alive connections; exit once the last
  // request in progress is answered.
  server.close(() => {
    console.log(`app ${process.pid}: closed`);
    process.exit(0);
  });
  server.closeIdleConnections();
});
