"""A plain Python http.server, as a non-Go program weft must trace from the
socket layer alone. Same routes as testdata/httpserver (/call without its goroutine modes)."""
import hashlib
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def call(url):
    """One outgoing call with the standard library's client, on the thread
    serving the request: its status, or 0 when it failed."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


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
            out = ",".join(str(call(to)) for to in q.get("to", [])).encode()
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
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


if __name__ == "__main__":
    ThreadingHTTPServer.request_queue_size = 512  # 200 callers at once
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"LISTEN {srv.server_address[1]}", flush=True)
    srv.serve_forever()
