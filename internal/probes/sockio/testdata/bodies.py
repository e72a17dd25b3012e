"""An HTTP/1.1 server whose every send is chosen: responses whose bodies
come in one call with their head, in calls of their own, not at all (HEAD),
chunked, or starting like a message. For sockio's TestBodiesLeftOut."""
import socket
import time

BODIES = {"/cut": 100000, "/split": 300000, "/head": 50000, "/chunked": 60000, "/lookalike": 40000}


def head(n, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n" % (n, extra)


def answer(c, method, path):
    n = BODIES.get(path, 5)
    if path == "/cut":  # head and body in one send
        c.sendall(head(n) + b"c" * n)
    elif path == "/split":  # the head alone, then the body in pieces, the last one late
        c.sendall(head(n))
        for _ in range(9):
            c.sendall(b"s" * (n // 10))
        time.sleep(0.05)
        c.sendall(b"s" * (n - 9 * (n // 10)))
    elif path == "/head":  # a length announced, no body
        c.sendall(head(n))
    elif path == "/chunked":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            c.sendall(b"%x\r\n%s\r\n" % (n // 3, b"k" * (n // 3)))
        c.sendall(b"0\r\n\r\n")
    elif path == "/lookalike":  # body sends that start like responses
        line = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        piece = (line * (n // 4 // len(line) + 1))[: n // 4]
        c.sendall(head(n))
        for _ in range(4):
            c.sendall(piece)
    else:
        c.sendall(head(n) + b"hello")


def serve(c):
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return
            buf += d
        h, _, buf = buf.partition(b"\r\n\r\n")
        lines = h.split(b"\r\n")
        method, path = lines[0].split(b" ")[:2]
        want = 0
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            if k.strip().lower() == b"content-length":
                want = int(v)
        while len(buf) < want:  # the request's body
            d = c.recv(65536)
            if not d:
                return
            buf += d
        buf = buf[want:]
        answer(c, method.decode(), path.decode())


s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print("LISTEN", s.getsockname()[1], flush=True)
while True:
    conn, _ = s.accept()
    serve(conn)
    conn.close()
