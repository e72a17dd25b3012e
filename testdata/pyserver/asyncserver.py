"""An asyncio HTTP/1.1 server: one thread serves every request from an event
loop, as Node.js, Python asyncio and Netty do, so a call it makes cannot be
tied to the request it serves by thread. Routes:

    GET /work            answers "hello"
    GET /call?to=URL...  calls each URL (HTTP/1.1, a new connection each;
                         https: TLS) and answers the statuses, comma-joined;
                         sleep=MS waits first, so requests overlap

    asyncserver.py [CERTFILE KEYFILE]   with a certificate: HTTPS

Its TLS, both ways, is asyncio's: SSL objects on memory BIOs (no socket of
their own), the ciphertext moved by the event loop, as Node.js does.
"""
import asyncio
import ssl
import sys
from urllib.parse import parse_qs, urlparse

# Test servers' certificates are self-signed.
UNVERIFIED = ssl._create_unverified_context()


async def call(url):
    u = urlparse(url)
    try:
        tls = UNVERIFIED if u.scheme == "https" else None
        r, w = await asyncio.open_connection(u.hostname, u.port, ssl=tls)
        target = u.path + ("?" + u.query if u.query else "")
        w.write(f"GET {target} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\n\r\n".encode())
        await w.drain()
        status = int((await r.readline()).split()[1])
        await r.read()
        w.close()
        return status
    except (OSError, ValueError, IndexError):
        return 0


async def handle(r, w):
    try:
        while True:
            line = await r.readline()
            if not line:
                break
            method, target, _ = line.decode().split(" ", 2)
            length = 0
            while True:
                h = await r.readline()
                if h in (b"\r\n", b""):
                    break
                name, _, value = h.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length:
                await r.readexactly(length)
            u = urlparse(target)
            q = parse_qs(u.query)
            if u.path == "/call":
                if "sleep" in q:
                    await asyncio.sleep(float(q["sleep"][0]) / 1000)
                out = ",".join([str(await call(to)) for to in q.get("to", [])]).encode()
            else:
                out = b"hello"
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
            await w.drain()
    except (OSError, ValueError, asyncio.IncompleteReadError):
        pass
    finally:
        w.close()


async def main():
    tls = None
    if len(sys.argv) == 3:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512, ssl=tls)
    print(f"LISTEN {srv.sockets[0].getsockname()[1]}", flush=True)
    await srv.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
