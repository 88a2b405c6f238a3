// A small node app for phased: each phased child runs one of these and
// forwards its requests to it. No framework, no npm install: node's own
// http module.
//
// Where to listen: phased puts the path of a unix socket its child owns in
// PHASED_APP_SOCKET (app.listen: socket, the default), or a free loopback
// port in PORT (app.listen: port).
//
// How to stop: once its child has drained, phased sends the app its
// app.stop_signal (TERM here). The app stops taking connections, lets the
// requests it has finish (server.close), and exits 0; phased kills it
// after app.stop_timeout if it has not.
'use strict';
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

const where = process.env.PHASED_APP_SOCKET || Number(process.env.PORT) || 3000;
const listening = typeof where === 'number' ? server.listen(where, '127.0.0.1') : server.listen(where);
listening.on('listening', () => console.log(`app ${process.pid}: listening on ${where}`));

process.on('SIGTERM', () => {
  console.log(`app ${process.pid}: SIGTERM, closing after ${served} requests`);
  // Stop accepting; end idle kept-alive connections; exit once the last
  // request in progress is answered.
  server.close(() => {
    console.log(`app ${process.pid}: closed`);
    process.exit(0);
  });
  server.closeIdleConnections();
});
