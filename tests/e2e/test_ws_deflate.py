"""permessage-deflate (RFC 7692) on the wire: a raw socket offers the
extension, then sends frames compressed with Python's zlib (or broken on
purpose) and reads the server's frames bit by bit: the negotiation table,
RSV1 only on a compressed message's first frame, the 00 00 ff ff tail,
thresholds, context takeover, window bits, fragments, and the failures:
RSV1 misuse (1002), corrupt data and bad UTF-8 (1007), a deflate bomb
(1009, without inflating it)."""
import base64
import os
import socket
import struct
import zlib

import pytest

from test_ws_protocol import Conn, frame
from ws_support import ScriptServer

APP = os.path.join(os.path.dirname(__file__), "apps", "ws_deflate_app.lua")
TAIL = b"\x00\x00\xff\xff"


@pytest.fixture(scope="module")
def srv():
    with ScriptServer(APP) as s:
        yield s
        s.stop_checked((0, 143, -15))


class DConn(Conn):
    """A raw client that sends Sec-WebSocket-Extensions lines (a list)."""

    def __init__(self, srv, path="/echo", offers=("permessage-deflate",)):  # pylint: disable=super-init-not-called
        self.sock = socket.create_connection((srv.host, srv.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        ext = "".join(f"Sec-WebSocket-Extensions: {o}\r\n" for o in offers)
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{ext}\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 ")
        self.extensions = None
        for line in head.decode().split("\r\n")[1:]:
            name, value = line.split(":", 1)
            if name.lower() == "sec-websocket-extensions":
                assert self.extensions is None, "two extension headers"
                self.extensions = value.strip()

    def read_frame_rsv(self):
        """-> (rsv bits, fin, opcode, payload)."""
        self._need(2)
        rsv = self.buf[0] >> 4 & 7
        return (rsv, *self.read_frame())

    def read_message(self, inflater=None):
        """-> (opcode, compressed?, wire payload, message): one unfragmented message."""
        rsv, fin, op, payload = self.read_frame_rsv()
        assert fin
        if rsv == 4:
            return op, True, payload, inflater.decompress(payload + TAIL)
        assert rsv == 0
        return op, False, payload, payload


def still_serves(srv):
    """The next client is served, compressed."""
    ok = DConn(srv)
    try:
        ok.send(frame(1, squeeze(raw(), b"still fine"), rsv=4))
        assert ok.read_message()[3] == b"still fine"
    finally:
        ok.close()


def squeeze(comp, data):
    """One message through a compressor kept by the caller, tail stripped."""
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def raw(wbits=15):
    return zlib.compressobj(6, zlib.DEFLATED, -wbits)


def unraw(wbits=15):
    return zlib.decompressobj(-wbits)


NEGOTIATION = [
    (["permessage-deflate"], "permessage-deflate"),
    (["permessage-deflate; client_max_window_bits"], "permessage-deflate"),
    (["permessage-deflate; client_max_window_bits=10"],
     "permessage-deflate; client_max_window_bits=10"),
    (["permessage-deflate; server_max_window_bits=8"],
     "permessage-deflate; server_max_window_bits=8"),
    (['permessage-deflate; server_max_window_bits="12"'],
     "permessage-deflate; server_max_window_bits=12"),
    (["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    (["PerMessage-Deflate ; Server_Max_Window_Bits = 9"],
     "permessage-deflate; server_max_window_bits=9"),
    (["permessage-deflate; server_max_window_bits=16, permessage-deflate; client_no_context_takeover"],
     "permessage-deflate; client_no_context_takeover"),
    (['x-webkit-deflate-frame; q="a, b; c", permessage-deflate; client_max_window_bits'],
     "permessage-deflate"),
    (["foo", "permessage-deflate; server_max_window_bits=11"],
     "permessage-deflate; server_max_window_bits=11"),
    (["permessage-deflate; server_max_window_bits=7"], None),
    (["permessage-deflate; server_max_window_bits=08"], None),
    (["permessage-deflate; server_max_window_bits"], None),
    (["permessage-deflate; client_max_window_bits=abc"], None),
    (["permessage-deflate; mystery"], None),
    (["permessage-deflate; server_no_context_takeover=yes"], None),
    (["permessage-deflate; client_no_context_takeover; client_no_context_takeover"], None),
    (["permessage-deflate; server_max_window_bits=10; server_max_window_bits=11"], None),
    (['permessage-deflate; server_max_window_bits="1"0'], None),
    (['permessage-deflate; server_max_window_bits="10'], None),
    (["foo, bar; baz=1"], None),
    ([], None),
]


@pytest.mark.parametrize("offers,answer", NEGOTIATION, ids=[" | ".join(o) or "none" for o, _ in NEGOTIATION])
def test_negotiation(srv, offers, answer):
    c = DConn(srv, offers=offers)
    try:
        assert c.extensions == answer
        text = b"negotiated " * 200
        if answer:
            c.send(frame(1, squeeze(raw(), text), rsv=4))
            op, compressed, _, msg = c.read_message(unraw())
            assert (op, compressed, msg) == (1, True, text)
        else:  # declined: plain frames work, RSV1 is a protocol error
            c.send(frame(1, text))
            assert c.read_message() == (1, False, text, text)
            c.send(frame(1, squeeze(raw(), text), rsv=4))
            assert c.read_close()[0] == 1002
    finally:
        c.close()


def test_route_without_the_option_declines(srv):
    c = DConn(srv, "/plain")
    try:
        assert c.extensions is None
        c.send(frame(1, squeeze(raw(), b"x" * 2000), rsv=4))
        assert c.read_close() == (1002, "RSV1 set without permessage-deflate")
        assert c.closed_by_server()
    finally:
        c.close()


def test_threshold_decides_what_is_compressed(srv):
    c = DConn(srv)
    try:
        big = ("{\"id\": 1, \"name\": \"tycho\"} " * 100).encode()
        c.send(frame(1, squeeze(raw(), big), rsv=4))
        op, compressed, wire, msg = c.read_message(unraw())
        assert (op, compressed, msg) == (1, True, big)
        assert len(wire) < len(big) // 10
        # under 1024 bytes: sent as is, whether it came compressed or not
        small = b"s" * 1023
        c.send(frame(2, squeeze(raw(), small), rsv=4))
        assert c.read_message() == (2, False, small, small)
        c.send(frame(2, small))
        assert c.read_message() == (2, False, small, small)
        c.send(frame(2, b"s" * 1024))
        assert c.read_message(unraw())[1] is True  # 1024 is not under the threshold
    finally:
        c.close()


def test_custom_threshold_and_empty_compressed_message(srv):
    c = DConn(srv, "/custom?threshold=0")
    try:
        c.send(frame(1, b"\x00", rsv=4))  # an empty message, compressed (RFC 7692 7.2.3.6)
        op, compressed, wire, msg = c.read_message(unraw())
        assert (op, compressed, msg) == (1, True, b"")
        assert wire == b"\x00"
        c.send(frame(1, b"hi"))
        assert c.read_message(unraw())[1:] == (True, b"\xca\xc8\x04\x00", b"hi")
    finally:
        c.close()


def test_fragmented_compressed_message_with_a_ping_inside(srv):
    c = DConn(srv)
    try:
        text = "fragmenté ✓ ".encode() * 3000
        data = squeeze(raw(), text)
        third = len(data) // 3
        c.send(frame(1, data[:third], fin=False, rsv=4) + frame(0, data[third:2 * third], fin=False)
               + frame(9, b"inside") + frame(0, data[2 * third:]))
        assert c.read_frame_rsv() == (0, True, 10, b"inside")
        op, compressed, _, msg = c.read_message(unraw())
        assert (op, compressed, msg) == (1, True, text)
    finally:
        c.close()


def test_message_ending_with_a_final_block(srv):
    """A peer may finish each message's deflate stream (BFINAL) instead of
    flushing it; the next message then starts a new stream."""
    c = DConn(srv)
    try:
        inf = unraw()  # our answers keep their context
        for i in range(3):
            text = f"final block {i} ".encode() * 200
            comp = raw()
            c.send(frame(1, comp.compress(text) + comp.flush(zlib.Z_FINISH), rsv=4))
            assert c.read_message(inf)[3] == text
    finally:
        c.close()


def test_context_takeover_both_ways(srv):
    """By default both sides keep their window: the same text a second
    time costs a few bytes. Our inflater must keep the client's context,
    and our deflater's second answer shows that it kept its own."""
    c = DConn(srv)
    try:
        text = os.urandom(3000).hex().encode()
        comp, inf = raw(), unraw()
        sizes = []
        for _ in range(3):
            wire = squeeze(comp, text)
            c.send(frame(1, wire, rsv=4))
            op, compressed, back, msg = c.read_message(inf)
            assert (op, compressed, msg) == (1, True, text)
            sizes.append((len(wire), len(back)))
        assert sizes[1][0] < 100 and sizes[1][1] < 100, sizes
        assert sizes[0][1] > 3000, sizes
    finally:
        c.close()


def test_no_context_takeover_both_ways(srv):
    c = DConn(srv, "/custom?snct=1&cnct=1")
    try:
        assert c.extensions == ("permessage-deflate; server_no_context_takeover; "
                                "client_no_context_takeover")
        text = os.urandom(3000).hex().encode()
        sizes = []
        for _ in range(3):
            # a fresh compressor per message, as agreed; our answers must be
            # readable by a fresh decompressor each time
            c.send(frame(1, squeeze(raw(), text), rsv=4))
            op, compressed, back, msg = c.read_message(unraw())
            assert (op, compressed, msg) == (1, True, text)
            sizes.append(len(back))
        assert sizes[0] == sizes[1] == sizes[2] and sizes[0] > 3000, sizes
    finally:
        c.close()


@pytest.mark.parametrize("bits", range(8, 16))
def test_window_bits(srv, bits):
    """server_max_window_bits=N: our frames must inflate with an N-bit
    window. The message repeats a random block at a distance no smaller
    window reaches, so a compressor that ignored N fails the inflate here."""
    c = DConn(srv, offers=[f"permessage-deflate; server_max_window_bits={bits}; client_max_window_bits"])
    try:
        assert c.extensions == f"permessage-deflate; server_max_window_bits={bits}"
        block = os.urandom(20000)
        data = block + block + b"tail" * 1000
        comp, inf = raw(max(bits, 9)), unraw(bits)
        for _ in range(2):
            c.send(frame(2, squeeze(comp, data), rsv=4))
            op, compressed, wire, msg = c.read_message(inf)
            assert (op, compressed, msg) == (2, True, data)
        assert len(wire) < 60000  # the "tail" run compresses even at 8 bits
    finally:
        c.close()


@pytest.mark.parametrize("bits", [9, 12, 15])
def test_client_window_bits_we_ask_for(srv, bits):
    c = DConn(srv, f"/custom?bits={bits}", offers=["permessage-deflate; client_max_window_bits"])
    try:
        want = "permessage-deflate"
        if bits < 15:
            want += f"; server_max_window_bits={bits}; client_max_window_bits={bits}"
        assert c.extensions == want
        data = os.urandom(5000) * 3
        c.send(frame(2, squeeze(raw(bits), data), rsv=4))
        assert c.read_message(unraw(bits))[3] == data
    finally:
        c.close()


MISUSE = [
    ("RSV1 on a continuation frame",
     lambda d: frame(1, d[:10], fin=False, rsv=4) + frame(0, d[10:], rsv=4), 1002,
     "RSV1 set on a continuation frame"),
    ("RSV1 on a ping", lambda d: frame(9, b"p", rsv=4), 1002, "RSV1 set on a control frame"),
    ("RSV1 on a close", lambda d: frame(8, struct.pack("!H", 1000), rsv=4), 1002,
     "RSV1 set on a control frame"),
    ("RSV2 with the extension on", lambda d: frame(1, d, rsv=2), 1002, "reserved bits set"),
    ("RSV1+RSV3", lambda d: frame(1, d, rsv=5), 1002, "reserved bits set"),
    ("corrupt deflate data", lambda d: frame(2, b"\xff\xff\xff\xff", rsv=4), 1007,
     "invalid compressed data"),
    ("corrupt data in a later fragment",
     lambda d: frame(2, d, fin=False, rsv=4) + frame(0, b"\xff" * 20), 1007,
     "invalid compressed data"),
    *[(f"message cut {cut} bytes short", lambda d, cut=cut: frame(2, d[:-cut], rsv=4), 1007,
       "invalid compressed data") for cut in (1, 2, 5, 7)],
    ("invalid UTF-8 once inflated", lambda d: frame(1, squeeze(raw(), b"ok \xc0\xaf" * 500), rsv=4),
     1007, "invalid UTF-8 in text message"),
    ("compressed frame over the limit", lambda d: frame(2, b"", rsv=4, length=2 * 1024 * 1024), 1009,
     "message too big"),
]


@pytest.mark.parametrize("name,make,code,reason", MISUSE, ids=[m[0] for m in MISUSE])
def test_misuse_fails_the_connection(srv, name, make, code, reason):
    c = DConn(srv)
    try:
        c.send(make(squeeze(raw(), b"valid data " * 100)))
        assert c.read_close() == (code, reason), name
        assert c.closed_by_server()
    finally:
        c.close()
    still_serves(srv)


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_deflate_bomb_closes_1009_with_bounded_memory():
    """256 MiB of zeros deflates to about 250 KiB: one small frame. The
    server must stop at max_message (1 MiB here) and close with 1009; its
    peak memory must not grow by anything near the bomb's size."""
    comp = raw()
    bomb = b"".join(comp.compress(bytes(1 << 20)) for _ in range(256)) + comp.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]
    assert len(bomb) < 400 * 1024
    with ScriptServer(APP) as s:
        warm = DConn(s)
        warm.send(frame(2, squeeze(raw(), b"w" * 4096), rsv=4))
        assert warm.read_message(unraw())[3] == b"w" * 4096
        warm.close()
        before = hwm_kib(s.proc.pid)
        c = DConn(s)
        try:
            c.send(frame(2, bomb, rsv=4))
            assert c.read_close() == (1009, "message too big")
            assert c.closed_by_server()
        finally:
            c.close()
        grew = hwm_kib(s.proc.pid) - before
        assert grew < 48 * 1024, f"peak memory grew by {grew} KiB"
        s.stop_checked((0, 143, -15))


def test_random_compressed_frames_never_break_the_server(srv):
    """Seeded garbage as compressed data (and as frames) on connections with
    the extension on: each ends with a close frame, an echo or EOF, and the
    server keeps serving (the ASan run checks memory on these paths)."""
    import random
    rnd = random.Random(7692)
    valid = squeeze(raw(), b"some text to damage " * 50)
    for i in range(120):
        c = DConn(srv)
        try:
            if i % 3 == 0:  # random bytes as deflate data
                body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 400)))
            else:  # valid data with a few bytes flipped or cut short
                body = bytearray(valid[:rnd.randint(1, len(valid))])
                for _ in range(rnd.randint(0, 4)):
                    body[rnd.randrange(len(body))] = rnd.getrandbits(8)
                body = bytes(body)
            if i % 4 == 0:  # split over fragments
                cut = rnd.randint(0, len(body))
                data = frame(rnd.choice([1, 2]), body[:cut], fin=False, rsv=4) + frame(0, body[cut:])
            else:
                data = frame(rnd.choice([1, 2]), body, rsv=4)
            c.send_last(data)
        finally:
            c.close()
    still_serves(srv)
