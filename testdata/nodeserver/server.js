// A Node.js HTTPS server, as a third-party event-loop program weft traces:
// Node's OpenSSL is linked into its executable and its SSL objects sit on
// memory BIOs (Node moves the ciphertext itself), so no SSL call does the
// socket I/O. Routes:
//
//   GET /work          answers "hello"
//   GET /call?to=URL   calls URL with Node's own client (https: TLS, a new
//                      connection each) and answers its status
//
// node server.js CERTFILE KEYFILE   prints "LISTEN <port>"
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');

function call(to, done) {
  const mod = to.startsWith('https:') ? https : http;
  const req = mod.get(to, {rejectUnauthorized: false, agent: false}, (res) => {
    res.resume();
    res.on('end', () => done(res.statusCode));
  });
  req.on('error', () => done(0));
}

const srv = https.createServer({cert: fs.readFileSync(process.argv[2]), key: fs.readFileSync(process.argv[3])}, (req, res) => {
  const u = new URL(req.url, 'https://localhost');
  if (u.pathname === '/call') {
    call(u.searchParams.get('to'), (status) => res.end(String(status)));
    return;
  }
  res.end('hello');
});
srv.listen(0, '127.0.0.1', () => console.log('LISTEN ' + srv.address().port));
