"""A small WebSocket client (RFC 6455) for the event tests, stdlib only.

    ws = WebSocket("http://127.0.0.1:8080", "/events?topics=prices")
    ws.status, ws.headers            # the handshake's answer (101, or a refusal)
    ws.recv()                        # (opcode, payload bytes), or None at EOF/timeout
    ws.send(OP_PING, b"x")           # masked, as a client must
    ws.send(OP_TEXT, b"hi", mask=False)   # a protocol violation, on purpose
    ws.close(1000)

It reads frames itself (no buffering surprises): every byte after the
handshake's head is a frame. Frames from the server must not be masked;
a masked one, or a reserved bit, is reported as an error.
"""
import base64
import hashlib
import os
import socket
import struct
import urllib.parse

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class ProtocolError(Exception):
    pass


class WebSocket:
    def __init__(self, base, path="/events", key=None, version="13", headers=None, timeout=10,
                 connection="Upgrade", upgrade="websocket"):
        u = urllib.parse.urlsplit(base)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        self.buf = b""
        self.key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s%s HTTP/1.1" % (u.path.rstrip("/"), path), "Host: %s:%d" % (u.hostname, u.port)]
        if upgrade is not None:
            lines.append("Upgrade: " + upgrade)
        if connection is not None:
            lines.append("Connection: " + connection)
        if self.key != "":
            lines.append("Sec-WebSocket-Key: " + self.key)
        if version is not None:
            lines.append("Sec-WebSocket-Version: " + version)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n")
        status_line, *hlines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for h in hlines:
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.body = b""
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                more = self.sock.recv(65536)
                if not more:
                    break
                self.buf += more
            self.body, self.buf = self.buf[:n], self.buf[n:]

    def accepted(self):
        return (self.status == 101 and self.headers.get("upgrade", "").lower() == "websocket"
                and "upgrade" in self.headers.get("connection", "").lower()
                and self.headers.get("sec-websocket-accept") == accept_of(self.key))

    def _read_until(self, marker):
        while marker not in self.buf:
            more = self.sock.recv(65536)
            if not more:
                raise ProtocolError("EOF in the handshake")
            self.buf += more
        i = self.buf.index(marker) + len(marker)
        head, self.buf = self.buf[:i - len(marker)], self.buf[i:]
        return head

    def _need(self, n):
        while len(self.buf) < n:
            more = self.sock.recv(65536)
            if not more:
                return False
            self.buf += more
        return True

    def recv(self, timeout=None):
        """The next frame: (opcode, payload), or None on EOF or timeout."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            if not self._need(2):
                return None
            b0, b1 = self.buf[0], self.buf[1]
            if b0 & 0x70:
                raise ProtocolError("reserved bits set")
            if b1 & 0x80:
                raise ProtocolError("a server frame is masked")
            n, hl = b1 & 0x7F, 2
            if n == 126:
                if not self._need(4):
                    return None
                n, hl = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if not self._need(10):
                    return None
                n, hl = struct.unpack("!Q", self.buf[2:10])[0], 10
            if not self._need(hl + n):
                return None
            payload = self.buf[hl:hl + n]
            self.buf = self.buf[hl + n:]
            if not b0 & 0x80:
                raise ProtocolError("fragmented server frame")
            return (b0 & 0x0F, payload)
        except socket.timeout:
            return None

    def frame(self, opcode, payload=b"", mask=True, fin=True, length=None):
        """The bytes of a client frame (length: claim another payload length)."""
        n = len(payload) if length is None else length
        head = bytes([(0x80 if fin else 0) | opcode])
        m = 0x80 if mask else 0
        if n < 126:
            head += bytes([m | n])
        elif n < 65536:
            head += bytes([m | 126]) + struct.pack("!H", n)
        else:
            head += bytes([m | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            head += key
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return head + payload

    def send(self, opcode, payload=b"", mask=True, **kw):
        self.sock.sendall(self.frame(opcode, payload, mask, **kw))

    def close(self, code=1000):
        try:
            self.send(OP_CLOSE, struct.pack("!H", code))
        except OSError:
            pass

    def eof(self, timeout=3):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                more = self.sock.recv(65536)
                if not more:
                    return True
                self.buf += more
        except socket.timeout:
            return False
        except OSError:
            return True

    def shutdown(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def close_code(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
