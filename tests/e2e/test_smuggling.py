"""Request smuggling and ambiguity: a table of raw requests sent to a real
`tycho run` server over TCP. Each row has the status the server must answer
and whether it must close the connection. The app counts handler calls:
nothing refused may reach it, and what it accepts reaches it exactly as
framed (the body it saw is part of the check)."""
import json

import pytest

from hard_server import Server, closed_by_peer, read_response

APP = r'''
local calls, seen = 0, {}
return function(req, res)
  if req.path == "/__stats" then
    return { calls = calls, seen = seen }
  end
  calls = calls + 1
  local body = req:body() or ""
  seen[#seen + 1] = req.method .. " " .. req.url .. " " .. #body .. " " .. body
  return "ok " .. #body
end
'''

H = "Host: t\r\n"
# (name, raw request, expected status, connection closes, body the handler
# saw). An Upgrade the server does not speak (h2c) is ignored, as RFC 9110
# 7.8 allows: served as HTTP/1.1; whether the connection stays is not fixed.
CASES = [
    # --- Content-Length and Transfer-Encoding together or doubled
    ("cl_and_te", f"POST / HTTP/1.1\r\n{H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400, True, None),
    ("te_and_cl", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400, True, None),
    ("duplicate_cl_differ", f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, True, None),
    ("duplicate_cl_same", f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, True, None),
    ("cl_list", f"POST / HTTP/1.1\r\n{H}Content-Length: 3, 3\r\n\r\nabc", 400, True, None),
    ("cl_negative", f"POST / HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n", 400, True, None),
    ("cl_plus_sign", f"POST / HTTP/1.1\r\n{H}Content-Length: +3\r\n\r\nabc", 400, True, None),
    ("cl_hex", f"POST / HTTP/1.1\r\n{H}Content-Length: 0x3\r\n\r\nabc", 400, True, None),
    ("cl_huge", f"POST / HTTP/1.1\r\n{H}Content-Length: 99999999999999999999999\r\n\r\n", 400, True, None),
    ("cl_over_limit", f"POST / HTTP/1.1\r\n{H}Content-Length: 1048577\r\n\r\n", 413, True, None),
    ("cl_space_inside", f"POST / HTTP/1.1\r\n{H}Content-Length: 1 2\r\n\r\nabcdefghijkl", 400, True, None),
    ("cl_empty", f"POST / HTTP/1.1\r\n{H}Content-Length:\r\n\r\n", 400, True, None),
    # --- Transfer-Encoding variants
    ("te_chunked_identity", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400, True, None),
    ("te_identity", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: identity\r\n\r\n", 400, True, None),
    ("te_tab_chunked", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding:\tchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, False, "abc"),
    ("te_leading_tab_name", f"POST / HTTP/1.1\r\n{H}\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, True, None),
    ("te_space_before_colon", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, True, None),
    ("te_xchunked", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400, True, None),
    ("te_chunked_twice", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, True, None),
    ("te_gzip_chunked", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 200, False, ""),
    ("te_in_http10", f"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, True, None),
    ("te_uppercase", f"POST / HTTP/1.1\r\n{H}TRANSFER-ENCODING: CHUNKED\r\n\r\n2\r\nab\r\n0\r\n\r\n", 200, False, "ab"),
    # --- chunked framing
    # leading zeros are unambiguous (1*HEXDIG): the value is what counts
    ("chunk_size_leading_zeros", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n{'0' * 200}3\r\nabc\r\n0\r\n\r\n", 200, False, "abc"),
    ("chunk_size_overflow_digits", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n1{'0' * 20}\r\nabc\r\n0\r\n\r\n", 400, True, None),
    ("chunk_extension_long", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3;{'e' * 20000}\r\nabc\r\n0\r\n\r\n", 200, False, "abc"),
    ("chunk_size_huge", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n", 400, True, None),
    ("chunk_size_negative", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 400, True, None),
    ("chunk_size_space", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400, True, None),
    ("chunk_bare_lf", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n", 400, True, None),
    ("chunk_data_too_long", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400, True, None),
    ("chunk_extension", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n", 200, False, "abc"),
    ("chunk_body_over_limit", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n100001\r\n" + "x" * 70000, 413, True, None),
    # --- header syntax
    ("obs_fold", f"GET / HTTP/1.1\r\n{H}X-A: one\r\n two\r\n\r\n", 400, True, None),
    ("obs_fold_tab_te", f"POST / HTTP/1.1\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n{H}Content-Length: 3\r\n\r\nabc", 400, True, None),
    ("bare_lf_headers", "GET / HTTP/1.1\nHost: t\n\n", 400, True, None),
    ("bare_cr_in_value", f"GET / HTTP/1.1\r\n{H}X-A: a\rb\r\n\r\n", 400, True, None),
    ("bare_cr_line_end", "GET / HTTP/1.1\rHost: t\r\r", 400, True, None),
    ("nul_in_value", f"GET / HTTP/1.1\r\n{H}X-A: a\0b\r\n\r\n", 400, True, None),
    ("nul_in_name", f"GET / HTTP/1.1\r\n{H}X-\0A: b\r\n\r\n", 400, True, None),
    ("space_in_name", f"GET / HTTP/1.1\r\n{H}X A: b\r\n\r\n", 400, True, None),
    ("no_colon", f"GET / HTTP/1.1\r\n{H}JustAName\r\n\r\n", 400, True, None),
    ("header_too_large", f"GET / HTTP/1.1\r\n{H}X-Big: {'a' * 17000}\r\n\r\n", 431, True, None),
    ("too_many_headers", "GET / HTTP/1.1\r\n" + "".join(f"X-{i}: v\r\n" for i in range(101)) + "\r\n", 431, True, None),
    # --- request line
    ("invalid_method", "GE@T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, True, None),
    ("lowercase_method", "get / HTTP/1.1\r\nHost: t\r\n\r\n", 400, True, None),
    ("unknown_method", "BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 400, True, None),
    ("absolute_form", "GET http://evil.example/x?y=1 HTTP/1.1\r\nHost: t\r\n\r\n", 200, False, ""),
    ("space_in_target", "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400, True, None),
    ("double_space", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 200, False, ""),
    ("http09", "GET /\r\n\r\n", 505, True, None),
    ("http2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, True, None),
    ("http3_version", "GET / HTTP/3.0\r\nHost: t\r\n\r\n", 400, True, None),
    ("http2_version_get", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, True, None),
    ("http_version_garbage", "GET / HTTP/1.x\r\nHost: t\r\n\r\n", 400, True, None),
    ("tls_client_hello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400, True, None),
    ("empty_lines_first", f"\r\n\r\nGET / HTTP/1.1\r\n{H}\r\n", 200, False, ""),
    ("get_with_body", f"GET / HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nabc", 200, False, "abc"),
    ("connection_close", f"GET / HTTP/1.1\r\n{H}Connection: close\r\n\r\n", 200, True, ""),
    ("http10_default_close", "GET / HTTP/1.0\r\n\r\n", 200, True, ""),
    ("upgrade_h2c", f"GET / HTTP/1.1\r\n{H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", 200, None, ""),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("smuggling"), APP)
    yield s
    assert s.stop() == 0
    assert "Sanitizer" not in s.stderr()


def stats(server):
    with server.connect() as sock:
        sock.sendall(b"GET /__stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 200
        return json.loads(body)


def test_table_is_big_enough():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,raw,status,closes,body", CASES, ids=[c[0] for c in CASES])
def test_raw_request(server, name, raw, status, closes, body):
    before = stats(server)["calls"]
    with server.connect() as sock:
        sock.sendall(raw.encode("latin-1"))
        resp = read_response(sock)
        assert resp is not None, "closed without a response"
        got = resp[0]
        assert got == status, resp
        if closes is None:
            pass
        elif closes:
            assert closed_by_peer(sock)
        else:
            # Still open, and in sync: the next request on it is answered.
            sock.sendall(b"GET /__stats HTTP/1.1\r\nHost: t\r\n\r\n")
            nxt = read_response(sock)
            assert nxt is not None and nxt[0] == 200
    after = stats(server)
    if got >= 400:
        assert after["calls"] == before, "a refused request reached the handler"
    else:
        assert after["calls"] == before + 1
        seen = after["seen"][-1].split(" ", 3)
        assert seen[2] == str(len(body)) and seen[3] == body


def test_pipelined_smuggle_attempt_reaches_handler_once(server):
    """A CL+TE request hiding a second request in its body: the server
    refuses the whole connection; the hidden request never runs."""
    before = stats(server)["calls"]
    raw = (f"POST / HTTP/1.1\r\n{H}Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: t\r\n\r\n")
    with server.connect() as sock:
        sock.sendall(raw.encode())
        assert read_response(sock)[0] == 400
        assert closed_by_peer(sock)
    after = stats(server)
    assert after["calls"] == before
    assert not any("/hidden" in s for s in after["seen"])


def test_server_survives_the_table(server):
    with server.connect() as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[:1] == (200,)
