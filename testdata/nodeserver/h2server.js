// A Node.js HTTP/2 server, as a third-party program weft traces: Node's
// http2 module (nghttp2) writes the frames, over TLS (Node's OpenSSL on
// memory BIOs) or in plaintext (h2c). Routes:
//
//   GET /work          answers "hello"
//   GET /call?to=URL   calls URL with Node's own HTTP/2 client (one session
//                      per origin, kept, as applications keep them) and
//                      answers its status; with &ping=1 it first sends the
//                      session a PING and waits 50 ms (the PING goes in a
//                      write, a record and a segment of its own)
//
// node h2server.js CERTFILE KEYFILE   HTTP/2 over TLS
// node h2server.js                    h2c
// Prints "LISTEN <port>".
'use strict';
const fs = require('fs');
const http2 = require('http2');

const sessions = new Map();

function session(origin) {
  let s = sessions.get(origin);
  if (!s || s.closed || s.destroyed) {
    s = http2.connect(origin, {rejectUnauthorized: false});
    s.on('error', () => sessions.delete(origin));
    s.on('close', () => sessions.delete(origin));
    sessions.set(origin, s);
  }
  return s;
}

function call(to, ping, done) {
  const u = new URL(to);
  if (ping) {
    try {
      session(u.origin).ping(() => {});
    } catch (e) {
      done(0);
      return;
    }
    setTimeout(() => call(to, false, done), 50);
    return;
  }
  let req;
  try {
    req = session(u.origin).request({':method': 'GET', ':path': u.pathname + u.search});
  } catch (e) {
    done(0);
    return;
  }
  let status = 0;
  req.on('response', (h) => { status = h[':status']; });
  req.on('data', () => {});
  req.on('end', () => done(status));
  req.on('error', () => done(0));
  req.end();
}

function handle(req, res) {
  const u = new URL(req.url, 'http://localhost');
  if (u.pathname === '/call') {
    call(u.searchParams.get('to'), u.searchParams.get('ping') === '1', (status) => res.end(String(status)));
    return;
  }
  res.end('hello');
}

const srv = process.argv.length > 3 ?
  http2.createSecureServer({cert: fs.readFileSync(process.argv[2]), key: fs.readFileSync(process.argv[3])}, handle) :
  http2.createServer(handle);
srv.listen(0, '127.0.0.1', () => console.log('LISTEN ' + srv.address().port));
