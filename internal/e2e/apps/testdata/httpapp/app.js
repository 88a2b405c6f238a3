// The app server of the app.type: http end-to-end tests: a node (v20+) HTTP
// server that each phased child starts and forwards to. It listens where
// phased says (PHASED_APP_SOCKET, or PORT and --port={port}), reports what
// reached it, and misbehaves on demand. Routes:
//
//   /echo...     the request as the app saw it, as JSON (?hold=ms first)
//   /stats       what the app has seen: request tags, the most requests at
//                once per group, when big responses finished, its env
//   /hold        counts itself in ?group while it waits ?ms, then answers;
//                with ?until=n it waits first until n of its group were in
//                the app at once (at most 5 s); with ?file=name, until a
//                file of that name is in its working folder (at most 30 s)
//   /big         ?size bytes of pattern(i) with a Content-Length
//   /sendfile    an empty answer with X-Sendfile: ?file, and X-Told: the
//                X-Sendfile-Type it was sent
//   /stream      ?n pieces ?ms apart, each with when it was written
//                (unix ms): ?mode=sse (text/event-stream),
//                chunked (no length) or accel (a length, X-Accel-Buffering: no)
//   /trailers    a chunked body with a trailer (X-Checksum: its sha256)
//   /log         ?msg (and ?pad bytes of x) to stdout and stderr
//   /alloc       keeps ?mb MiB of touched memory
//   /crash       writes to stderr and exits 7 while the request waits
//   /health      200, or 500 with --unhealthy
//   upgrade      101, "hello\n", then echoes every byte back
//
// Every request is tagged by ?tag (else its path) in /stats' seen list the
// moment its headers arrive, before its body. Lines go to APP_TRACE (a file)
// at start and on the stop signal; on the stop signal the app exits, unless
// a file named ignore-stop is in its working folder. With --no-listen it
// never listens; with a file named crash-at-start it exits 5 at once.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const args = process.argv.slice(2);
const flag = (name) => args.includes('--' + name);
const argValue = (name) => {
  const a = args.find((x) => x.startsWith('--' + name + '='));
  return a === undefined ? undefined : a.slice(name.length + 3);
};
const env = process.env;

function trace(line) {
  if (env.APP_TRACE) fs.appendFileSync(env.APP_TRACE, line + '\n');
}

if (fs.existsSync('crash-at-start')) {
  console.error(`app ${process.pid}: crash-at-start is there; exiting`);
  process.exit(5);
}

// pattern is the body of /big: byte i of it.
function pattern(size) {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 13)) & 0xff;
  return b;
}

const seen = [];
const inflight = {};
const maxInflight = {};
const finished = {};
const kept = [];
let busy = 0;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  const q = url.searchParams;
  const tag = q.get('tag') || url.pathname;
  res.setHeader('X-App-Pid', String(process.pid));
  busy++;
  res.on('close', () => { busy--; });
  switch (url.pathname.startsWith('/echo') ? '/echo' : url.pathname) {
    case '/echo': {
      const hash = crypto.createHash('sha256');
      let length = 0;
      req.on('data', (d) => { hash.update(d); length += d.length; });
      req.on('end', () => {
        setTimeout(() => {
          res.setHeader('Content-Type', 'application/json');
          res.end(JSON.stringify({
            pid: process.pid, method: req.method, url: req.url, httpVersion: req.httpVersion,
            headers: req.headers, rawHeaders: req.rawHeaders, trailers: req.trailers,
            bodyLength: length, bodySha256: hash.digest('hex'),
          }));
        }, Number(q.get('hold') || 0));
      });
      return;
    }
    case '/stats':
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({
        pid: process.pid, seen, max: maxInflight, finished, argPort: argValue('port') || '',
        env: {
          PORT: env.PORT || '', PHASED_APP_SOCKET: env.PHASED_APP_SOCKET || '', PHASED_SLOT: env.PHASED_SLOT || '',
          PHASED_GENERATION: env.PHASED_GENERATION || '', PHASED_THREADS: env.PHASED_THREADS || '',
        },
      }));
      return;
    case '/hold': {
      const g = q.get('group') || 'default';
      inflight[g] = (inflight[g] || 0) + 1;
      maxInflight[g] = Math.max(maxInflight[g] || 0, inflight[g]);
      req.resume();
      const until = Number(q.get('until') || 0);
      const start = Date.now();
      const done = () => {
        inflight[g]--;
        res.setHeader('X-App-Max', String(maxInflight[g]));
        res.end(`held ${g}\n`);
      };
      const file = q.get('file');
      const wait = () => {
        const waited = Date.now() - start;
        const grouped = maxInflight[g] >= until || waited > 5000;
        const released = !file || fs.existsSync(file) || waited > 30000;
        if (grouped && released) setTimeout(done, Number(q.get('ms') || 500));
        else setTimeout(wait, 10);
      };
      wait();
      return;
    }
    case '/sendfile': {
      // An answer for phased to send a file in (app.sendfile_paths), and
      // what the app was told of it.
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('X-Sendfile', q.get('file') || '');
      res.setHeader('X-Told', req.headers['x-sendfile-type'] || 'nothing');
      res.end();
      return;
    }
    case '/big': {
      const body = pattern(Number(q.get('size') || 1024));
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Content-Length', String(body.length));
      res.on('finish', () => { finished[tag] = Date.now(); });
      res.end(body);
      return;
    }
    case '/stream': {
      const n = Number(q.get('n') || 5);
      const ms = Number(q.get('ms') || 150);
      const mode = q.get('mode') || 'chunked';
      // Each piece says when it was written, in the same width.
      const piece = (i) => (mode === 'sse' ? `data: event ${i} at ${Date.now()}\n\n` : `piece ${i} at ${Date.now()}\n`);
      if (mode === 'sse') res.setHeader('Content-Type', 'text/event-stream');
      else res.setHeader('Content-Type', 'text/plain');
      if (mode === 'accel') {
        let total = 0;
        for (let i = 0; i < n; i++) total += Buffer.byteLength(piece(i));
        res.setHeader('Content-Length', String(total));
        res.setHeader('X-Accel-Buffering', 'no');
      }
      res.flushHeaders();
      let i = 0;
      const next = () => {
        res.write(piece(i++));
        if (i === n) res.end();
        else setTimeout(next, ms);
      };
      next();
      return;
    }
    case '/trailers': {
      const parts = ['first part,', ' second part'];
      res.setHeader('Trailer', 'X-Checksum');
      res.setHeader('Content-Type', 'text/plain');
      for (const p of parts) res.write(p);
      res.addTrailers({ 'X-Checksum': crypto.createHash('sha256').update(parts.join('')).digest('hex') });
      res.end();
      return;
    }
    case '/log': {
      const pad = 'x'.repeat(Number(q.get('pad') || 0));
      console.log(`app stdout: ${q.get('msg')}${pad}`);
      console.error(`app stderr: ${q.get('msg')}${pad}`);
      res.end('logged\n');
      return;
    }
    case '/alloc': {
      const b = Buffer.alloc(Number(q.get('mb') || 1) << 20, 1);
      kept.push(b);
      res.end(`kept ${kept.reduce((n, x) => n + x.length, 0)} bytes\n`);
      return;
    }
    case '/crash':
      console.error(`app ${process.pid}: crashing on purpose: ${q.get('why') || 'asked to'}`);
      setTimeout(() => process.exit(7), 50);
      return;
    case '/health':
      res.statusCode = flag('unhealthy') ? 500 : 200;
      res.end(flag('unhealthy') ? 'unhealthy\n' : 'ok\n');
      return;
    default:
      res.statusCode = 404;
      res.end('not found\n');
  }
});

server.on('request', (req) => {
  const url = new URL(req.url, 'http://app');
  seen.push(url.searchParams.get('tag') || url.pathname);
});

// Expect: 100-continue must never reach the app: phased answers it.
server.on('checkContinue', (req, res) => {
  seen.push('expect:' + req.url);
  res.writeHead(417);
  res.end('the app saw Expect: 100-continue\n');
});

server.on('upgrade', (req, socket, head) => {
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello\n');
  if (head.length) socket.write(head);
  socket.pipe(socket);
});

for (const sig of ['SIGTERM', 'SIGQUIT', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']) {
  process.on(sig, () => {
    const ignore = fs.existsSync('ignore-stop');
    trace(`app-stop pid=${process.pid} slot=${env.PHASED_SLOT} signal=${sig} busy=${busy} ignored=${ignore}`);
    console.log(`app ${process.pid}: got ${sig}${ignore ? ', ignoring it' : ''}`);
    if (!ignore) process.exit(0);
  });
}

trace(`app-start pid=${process.pid} slot=${env.PHASED_SLOT} generation=${env.PHASED_GENERATION}`);
if (flag('no-listen')) {
  setInterval(() => {}, 1 << 30); // alive, and never answering
} else {
  if (env.PHASED_APP_SOCKET) {
    server.listen(env.PHASED_APP_SOCKET);
  } else {
    if (argValue('port') !== env.PORT) {
      console.error(`app: --port=${argValue('port')} but PORT=${env.PORT}`);
      process.exit(2);
    }
    server.listen(Number(env.PORT), '127.0.0.1');
  }
  server.on('listening', () => console.log(`app ${process.pid} listening`));
}
