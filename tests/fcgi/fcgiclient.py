"""A minimal FastCGI client for the tests in tests/fcgi: one request per
connection (as nginx without fastcgi_keep_conn), straight to shop-fcgi's
socket, no web server in between.

    from fcgiclient import request, connect, send, receive
    status, headers, body = request("unix:/tmp/a.sock", "GET", "/products/1")

connect() + send() + receive() split one request in three, so a test can
queue requests in a responder's accept backlog and answer them later.
"""
import socket
import struct

FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = 1, 3, 4, 5, 6, 7
FCGI_RESPONDER = 1


def _record(rtype, content, rid=1):
    out = b""
    # Records carry at most 65535 bytes; an empty one ends a stream.
    chunks = [content[i:i + 65535] for i in range(0, len(content), 65535)] or [b""]
    for c in chunks:
        pad = (8 - len(c) % 8) % 8
        out += struct.pack("!BBHHBx", 1, rtype, rid, len(c), pad) + c + b"\0" * pad
    return out


def _pair(name, value):
    def length(n):
        return struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)
    name, value = name.encode(), value.encode()
    return length(len(name)) + length(len(value)) + name + value


def connect(address, timeout=10.0):
    """address: unix:/path or host:port. Raises OSError (ECONNREFUSED...)."""
    if address.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(address[5:])
    else:
        host, port = address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=timeout)
    return s


def send(s, method, uri, body=b"", headers=None, content_type=None):
    path, _, query = uri.partition("?")
    params = {
        "REQUEST_METHOD": method, "REQUEST_URI": uri, "SCRIPT_NAME": path,
        "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
        "CONTENT_TYPE": content_type or ("application/json" if body else ""),
        "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    for k, v in (headers or {}).items():
        params["HTTP_" + k.upper().replace("-", "_")] = v
    data = _record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", FCGI_RESPONDER, 0))
    data += _record(FCGI_PARAMS, b"".join(_pair(k, v) for k, v in params.items()))
    data += _record(FCGI_PARAMS, b"")
    if body:
        data += _record(FCGI_STDIN, body)
    data += _record(FCGI_STDIN, b"")
    s.sendall(data)


def receive(s):
    """(status, {header-lower: value}, body bytes) once FCGI_END_REQUEST came."""
    buf, out = b"", b""
    while True:
        while len(buf) >= 8:
            _, rtype, _, clen, pad = struct.unpack("!BBHHBx", buf[:8])
            if len(buf) < 8 + clen + pad:
                break
            content = buf[8:8 + clen]
            buf = buf[8 + clen + pad:]
            if rtype == FCGI_STDOUT:
                out += content
            elif rtype == FCGI_END_REQUEST:
                s.close()
                return _parse(out)
        more = s.recv(65536)
        if not more:
            s.close()
            raise ConnectionError("the responder closed the connection before FCGI_END_REQUEST")
        buf += more


class Stream:
    """A response read as it comes (GET /events): feed() returns the stdout
    bytes so far; closed is set once FCGI_END_REQUEST came."""

    def __init__(self, s):
        self.s, self.buf, self.out, self.closed = s, b"", b"", False

    def feed(self, until, timeout=5.0):
        import time
        end = time.monotonic() + timeout
        while until not in self.out and not self.closed and time.monotonic() < end:
            self.s.settimeout(max(0.01, end - time.monotonic()))
            try:
                more = self.s.recv(65536)
            except socket.timeout:
                break
            if not more:
                self.closed = True
                break
            self.buf += more
            while len(self.buf) >= 8:
                _, rtype, _, clen, pad = struct.unpack("!BBHHBx", self.buf[:8])
                if len(self.buf) < 8 + clen + pad:
                    break
                if rtype == FCGI_STDOUT:
                    self.out += self.buf[8:8 + clen]
                elif rtype == FCGI_END_REQUEST:
                    self.closed = True
                self.buf = self.buf[8 + clen + pad:]
        return self.out

    def close(self):
        self.s.close()


def _parse(out):
    head, _, body = out.partition(b"\r\n\r\n")
    headers, status = {}, 200
    for line in head.decode("latin-1").split("\r\n"):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "status" in headers:
        status = int(headers["status"].split()[0])
    return status, headers, body


def request(address, method, uri, body=b"", headers=None, timeout=10.0):
    s = connect(address, timeout)
    send(s, method, uri, body, headers)
    return receive(s)

