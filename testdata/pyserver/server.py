"""A plain Python http.server, as a non-Go program weft must trace from the
socket layer alone. Same routes as testdata/httpserver (/call without its goroutine modes).

    server.py [HOST [CERTFILE KEYFILE]]   with a certificate: HTTPS
"""
import hashlib
import http.client
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


# Test servers' certificates are self-signed.
UNVERIFIED = ssl._create_unverified_context()


def pattern(n):
    """The upload body testdata/httpserver's Pattern makes."""
    return bytes(i % 251 for i in range(n))


def post_one_send(url, data):
    """A POST whose head and body leave in one send (as many clients write
    them): the answer's status and body."""
    u = urlparse(url)
    target = u.path + ("?" + u.query if u.query else "")
    head = (f"POST {target} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(head + data)
        resp = http.client.HTTPResponse(s)
        resp.begin()
        return resp.status, resp.read()


def call(url, data=None, digest=False, one_send=False):
    """One outgoing call with the standard library's client, on the thread
    serving the request (a POST of data when given: headers and body go in
    one send): its status, or with digest "status length sha256" of the
    answer; 0 when it failed."""
    try:
        if one_send and data:
            status, body = post_one_send(url, data)
        else:
            ctx = UNVERIFIED if url.startswith("https:") else None
            with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30, context=ctx) as resp:
                body = resp.read()
                status = resp.status
    except urllib.error.HTTPError as e:
        return str(e.code)
    except OSError:
        return "0"
    if digest:
        return f"{status} {len(body)} {hashlib.sha256(body).hexdigest()}"
    return str(status)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like most servers

    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _answer(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        body = self._body()
        if u.path == "/call":
            # Calls each ?to= URL in turn, like testdata/httpserver's /call.
            n = int(q.get("upload", ["0"])[0])
            data = pattern(n) if n else None
            one = "onesend" in q
            out = ",".join(call(to, data, "digest" in q, one) for to in q.get("to", [])).encode()
            status = 200
        elif u.path == "/echo":
            out = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
            status = 200
        else:
            if "sleep" in q:
                time.sleep(float(q["sleep"][0].rstrip("ms")) / 1000)
            status = int(q.get("status", ["200"])[0])
            out = b"x" * int(q.get("size", ["0"])[0]) if u.path == "/work" else b"hello"
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer


if __name__ == "__main__":
    ThreadingHTTPServer.request_queue_size = 512  # 200 callers at once
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    srv = ThreadingHTTPServer((host, 0), Handler)
    if len(sys.argv) > 3:  # HTTPS: certificate and key files
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    print(f"LISTEN {srv.server_address[1]}", flush=True)
    srv.serve_forever()
