#!/usr/bin/env python3
"""The test upstream: a plain standard-library HTTP server that is not Rust.

Every request is answered with JSON echoing what arrived: method, path (with
the query), the header fields in order, and the body (text and length). Each
request is also appended to the log file (one JSON line) before it is
answered, so a test can prove a request never reached the upstream.

Special paths:
  /slow?secs=N   sleeps N seconds before answering (upstream timeouts)
  /big?mib=N     streams N MiB of response body in 64 KiB chunks
  /stall?secs=N  announces 100 bytes of body, sends 3, then nothing for N seconds
  /close         answers with Connection: close, and closes the connection
  /empty         answers 204 (no body)
  /http10        answers as HTTP/1.0 (no keep-alive) and closes the connection
  .../unread     answers without reading the request body, as a GET handler
                 that expects none does: on a kept-alive connection whatever
                 body it left is read as the next request
  .../late       answers a HEAD with a head alone (Content-Length: 8) and any
                 other method with 204, then 0.3 s later sends a second,
                 unasked answer (X-Poison), as a HEAD handler that is its GET
                 handler, or one writing a body after a 204, would
  .../cl-te      answers with both Content-Length: 3 and a chunked body
  .../switch     answers 101 Switching Protocols to a request that never asked
  /refusal       answers 503 with a verifier's store_unavailable problem and its
                 Tessera-Error field, as an application passing on the refusal
                 of a service it called would (after acting on the request)

The echo also carries the port the request came from (peer_port), so a
test can tell which upstream connection carried it.

Usage: upstream.py LOGFILE   -- prints "listening on PORT" once bound.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOG = sys.argv[1]


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _raw(self, data):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            # The gateway closed the connection first.
            self.close_connection = True

    def _handle(self):
        url = urlsplit(self.path)
        body = b"" if url.path.endswith("/unread") else self._body()
        record = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "body_len": len(body),
            "peer_port": self.client_address[1],
        }
        with open(LOG, "a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path}) + "\n")
        query = parse_qs(url.query)
        if url.path.endswith("/late"):
            if self.command == "HEAD":
                self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
            else:
                self._raw(b"HTTP/1.1 204 No Content\r\n\r\n")
            time.sleep(0.3)
            self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poison: yes\r\n\r\nPOISONED")
            return
        if url.path.endswith("/cl-te"):
            self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n0\r\n\r\n")
            return
        if url.path.endswith("/switch"):
            self._raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n\r\n")
            self.close_connection = True
            return
        if url.path == "/slow":
            time.sleep(float(query.get("secs", ["5"])[0]))
        if url.path == "/big":
            mib = int(query.get("mib", ["1"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(mib * 1024 * 1024))
            self.end_headers()
            chunk = b"x" * 65536
            for _ in range(mib * 16):
                self.wfile.write(chunk)
            return
        if url.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"abc")
            self.wfile.flush()
            time.sleep(float(query.get("secs", ["30"])[0]))
            self.close_connection = True
            return
        if url.path == "/http10":
            # An HTTP/1.0 answer without keep-alive, as some WSGI servers give.
            out = json.dumps(record).encode()
            self.wfile.write(
                b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                + b"Content-Length: " + str(len(out)).encode() + b"\r\n\r\n" + out
            )
            self.close_connection = True
            return
        if url.path == "/refusal":
            out = json.dumps({"type": "urn:tessera:error:store_unavailable", "status": 503,
                              "code": "store_unavailable", "title": "Store unavailable",
                              "detail": "passed on from a service the upstream called"}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Tessera-Error", "store_unavailable")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        if url.path == "/empty":
            self.send_response(204)
            self.end_headers()
            return
        out = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        if url.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Connection", "keep-alive, x-upstream-hop")
        self.send_header("X-Upstream-Hop", "must not reach the client")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
