"""The protocol-violation table: a raw socket does the opening handshake,
then sends frames a correct client never would. Each must be answered with
a close frame carrying the right code, the server must close the TCP
connection, and the next client must still be served."""
import base64
import os
import socket
import struct

import pytest

from ws_support import ScriptServer

APP = os.path.join(os.path.dirname(__file__), "apps", "ws_app.lua")


@pytest.fixture(scope="module")
def srv():
    with ScriptServer(APP) as s:
        yield s
        s.stop_checked((0, 143, -15))


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """One frame as bytes; `length` overrides the declared payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Conn:
    def __init__(self, srv, path="/echo"):
        self.sock = socket.create_connection((srv.host, srv.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 ")

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def read_frame(self):
        """-> (fin, opcode, payload); server frames are never masked."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frame is masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def read_close(self):
        """Skips data frames up to the close frame: -> (code, reason)."""
        for _ in range(100):
            _, op, payload = self.read_frame()
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:].decode()
        raise AssertionError("no close frame")

    def send_last(self, data):
        """Sends data, then FIN; reads until a close frame or the end."""
        self.sock.sendall(data)
        self.sock.shutdown(socket.SHUT_WR)  # an incomplete frame then ends in EOF
        try:
            for _ in range(50):
                _, op, _ = self.read_frame()
                if op == 8:
                    return
        except (EOFError, ConnectionResetError, socket.timeout):
            pass

    def closed_by_server(self):
        """True when the server closes the TCP connection (EOF)."""
        self.sock.settimeout(10)
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return True

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()


VIOLATIONS = [
    ("unmasked client frame", frame(1, b"hello", mask=False), 1002),
    ("reserved bit 1", frame(1, b"hello", rsv=4), 1002),
    ("reserved bit 3", frame(2, b"hello", rsv=1), 1002),
    ("opcode 3", frame(3, b"x"), 1002),
    ("opcode 0xB", frame(0xB, b"x"), 1002),
    ("ping over 125 bytes", frame(9, b"p" * 126), 1002),
    ("close over 125 bytes", frame(8, b"\x03\xe8" + b"r" * 124), 1002),
    ("fragmented ping", frame(9, b"ping", fin=False), 1002),
    ("continuation without a message", frame(0, b"orphan"), 1002),
    ("new message inside a fragmented one", frame(1, b"a", fin=False) + frame(1, b"b"), 1002),
    ("invalid UTF-8 text", frame(1, b"\xc0\xaf"), 1007),
    ("UTF-8 surrogate", frame(1, b"\xed\xa0\x80"), 1007),
    ("invalid UTF-8 across fragments", frame(1, b"ok \xe2\x82", fin=False) + frame(0, b"\x28"), 1007),
    ("close with a 1-byte body", frame(8, b"\x03"), 1002),
    ("close code 1005", frame(8, struct.pack("!H", 1005)), 1002),
    ("close code 999", frame(8, struct.pack("!H", 999)), 1002),
    ("close code 2000", frame(8, struct.pack("!H", 2000)), 1002),
    ("close reason not UTF-8", frame(8, struct.pack("!H", 1000) + b"\xff"), 1007),
    ("declared length over the limit", frame(2, b"", length=2 * 1024 * 1024), 1009),
    ("64-bit length with the top bit", b"\x82\xff" + b"\x80" + b"\x00" * 7 + b"mask", 1002),
]


@pytest.mark.parametrize("name,data,code", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_violation_closes_with_code(srv, name, data, code):
    c = Conn(srv)
    try:
        c.send(data)
        got, _ = c.read_close()
        assert got == code, name
        assert c.closed_by_server()
    finally:
        c.close()
    ok = Conn(srv)  # the server still serves
    try:
        ok.send(frame(1, b"after " + name.encode()))
        assert ok.read_frame() == (True, 1, b"after " + name.encode())
    finally:
        ok.close()


def test_interleaved_control_frames_are_fine(srv):
    c = Conn(srv)
    try:
        c.send(frame(1, b"one ", fin=False) + frame(9, b"p1") + frame(0, b"two ", fin=False)
               + frame(10, b"unsolicited pong") + frame(9, b"p2") + frame(0, b"three"))
        assert c.read_frame() == (True, 10, b"p1")
        assert c.read_frame() == (True, 10, b"p2")
        assert c.read_frame() == (True, 1, b"one two three")
        c.send(frame(8, struct.pack("!H", 1000) + b"done"))
        assert c.read_close() == (1000, "")
        assert c.closed_by_server()
    finally:
        c.close()


def test_frames_split_byte_by_byte(srv):
    c = Conn(srv)
    try:
        data = frame(1, "byte by byte ✓".encode()) + frame(2, bytes(300))
        for i in range(len(data)):
            c.send(data[i:i + 1])
        assert c.read_frame() == (True, 1, "byte by byte ✓".encode())
        assert c.read_frame() == (True, 2, bytes(300))
    finally:
        c.close()


def test_frames_sent_with_the_handshake(srv):
    """Bytes after the request head (same packet) are the first frames."""
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
                  + frame(1, b"early bird"))
        buf = b""
        while b"early bird" not in buf:
            chunk = s.recv(4096)
            assert chunk
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 101 ")
    finally:
        s.close()


def test_empty_close_is_echoed_empty(srv):
    c = Conn(srv)
    try:
        c.send(frame(8))
        _, op, payload = c.read_frame()
        assert (op, payload) == (8, b"")
        assert c.closed_by_server()
    finally:
        c.close()


def test_random_frames_never_break_the_server(srv):
    """Seeded garbage after the handshake: every connection ends with a close
    frame or EOF, and the server keeps serving."""
    import random
    rnd = random.Random(6455)
    for i in range(150):
        c = Conn(srv)
        try:
            junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300)))
            if i % 3 == 0:  # a plausible header with a random body
                junk = bytes([rnd.choice([0x81, 0x82, 0x01, 0x80, 0x89, 0x8a, 0x88])]) + junk
            c.send_last(junk)
        finally:
            c.close()
    ok = Conn(srv)
    try:
        ok.send(frame(1, b"still alive"))
        assert ok.read_frame() == (True, 1, b"still alive")
    finally:
        ok.close()
