"""Section 1: general HTTP rules."""

import json
import socket
import time

import pytest
import requests

from e2e_helpers import (ADMIN_PASSWORD, RawConn, assert_error, raw_request_with_body)

MiB = 1024 * 1024
TIMEOUTS = '[limits]\nread_timeout = "2s"\nidle_timeout = "2s"\n'


@pytest.fixture(scope="module")
def tsrv(module_server_factory):
    """A server with 2 s read and idle timeouts."""
    return module_server_factory(config=TIMEOUTS)


# ----------------------------------------------------------------------------- basics
def test_healthz(srv):
    r = srv.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_metrics(srv):
    r = srv.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE" in r.text or "# HELP" in r.text


@pytest.mark.parametrize("path", ["/api/nope", "/api/auth/nope", "/api/user/info/extra",
                                  "/api/admin/users/a/b/c", "/api/"])
def test_unknown_path_404(srv, path):
    r = srv.get(path, srv.admin_token())
    assert_error(r, 404, "Not found")
    assert r.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/api/auth/login"), ("GET", "/api/auth/login"), ("PUT", "/api/auth/login"),
    ("GET", "/api/auth/register"), ("DELETE", "/api/auth/logout"), ("POST", "/api/auth/session"),
    ("POST", "/api/user/info"), ("PUT", "/api/user/set_profile"), ("GET", "/api/user/set_photo"),
    ("DELETE", "/api/user/set_photo"), ("POST", "/api/admin/users"), ("PUT", "/api/admin/users/admin"),
    ("GET", "/api/admin/users/admin/password"), ("POST", "/healthz"),
])
def test_wrong_method_405(srv, method, path):
    r = srv.request(method, path, srv.admin_token(), json={})
    assert_error(r, 405, "Method not allowed")
    assert r.headers["Content-Type"].startswith("application/json")
    assert "Allow" in r.headers, r.headers


def test_405_allow_header_lists_methods(srv):
    r = srv.request("DELETE", "/api/auth/login")
    assert "POST" in r.headers.get("Allow", "")
    r = srv.request("DELETE", "/api/user/set_photo", srv.admin_token())
    allow = r.headers.get("Allow", "")
    assert "POST" in allow and "PUT" in allow, allow


def test_json_content_type_on_success(srv):
    r = srv.post("/api/auth/login", json={"account": "admin", "password": ADMIN_PASSWORD})
    assert r.headers["Content-Type"].startswith("application/json")


# ----------------------------------------------------------------------------- size limits
def test_body_over_1mib_requests(srv):
    big = {"account": "admin", "password": "x" * (MiB + 1000)}
    r = srv.post("/api/auth/login", json=big)
    assert_error(r, 413)
    assert srv.get("/healthz").status_code == 200


def test_body_over_1mib_raw(srv):
    size = MiB + 64 * 1024
    head = (f"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    resp = raw_request_with_body(srv.port, head, size)
    assert resp is not None, "connection closed without a response"
    assert resp.status == 413
    assert "message" in resp.json()


def test_body_declared_huge(srv):
    """A 100 MiB Content-Length is refused early; the 413 reaches the client."""
    size = 100 * MiB
    head = (f"POST /api/user/set_profile HTTP/1.1\r\nHost: x\r\nAuthorization: "
            f"{srv.admin_token()}\r\nContent-Length: {size}\r\n\r\n").encode()
    t0 = time.monotonic()
    resp = raw_request_with_body(srv.port, head, size, timeout=15)
    assert resp is not None and resp.status == 413, resp
    assert time.monotonic() - t0 < 10
    assert srv.get("/healthz").status_code == 200


def test_body_exactly_1mib_not_413(srv):
    # a 1 MiB body is within the limit (it is just invalid for login)
    pad = MiB - len('{"account":"admin","password":""}')
    body = '{"account":"admin","password":"' + "x" * pad + '"}'
    assert len(body) == MiB
    r = srv.post("/api/auth/login", data=body)
    assert r.status_code in (400, 401), r.status_code


def test_header_block_too_large(srv):
    with srv.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (17 * 1024) + b"\r\n\r\n")
        resp = c.read_response()
    assert resp is not None, "closed without a 431"
    assert resp.status == 431
    assert "message" in resp.json()


def test_many_headers_too_large(srv):
    hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(200))
    with srv.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
        resp = c.read_response()
    assert resp is not None and resp.status == 431


def test_header_block_too_large_requests(srv):
    r = srv.get("/healthz", headers={"X-Big": "b" * (20 * 1024)})
    assert_error(r, 431)


def test_header_block_under_limit_ok(srv):
    r = srv.get("/healthz", headers={"X-Big": "b" * (15 * 1024)})
    assert r.status_code == 200


def test_endless_header_line(srv):
    # a header that never ends: the server must answer 431 (or close) once past the limit
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: "
    resp = raw_request_with_body(srv.port, head, 4 * MiB, timeout=15)
    assert resp is None or resp.status == 431, resp
    assert srv.get("/healthz").status_code == 200


# ----------------------------------------------------------------------------- keep-alive
def test_keepalive_pipelined(srv):
    with srv.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1 is not None and r1.status == 200 and r1.json() == {"status": "ok"}
    assert r2 is not None and r2.status == 200 and r2.json() == {"status": "ok"}


def test_keepalive_sequential_mixed(srv):
    body = json.dumps({"account": "admin", "password": ADMIN_PASSWORD}).encode()
    with srv.connect() as c:
        for i in range(5):
            c.send(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
            r = c.read_response()
            assert r is not None and r.status == 200, (i, r)
            tok = r.json()["access_token"]
            c.send(b"GET /api/user/info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                   + tok.encode() + b"\r\n\r\n")
            r = c.read_response()
            assert r is not None and r.status == 200 and r.json()["account"] == "admin"
            # an error response keeps the connection too
            c.send(b"GET /api/nope HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            assert r is not None and r.status == 404


def test_keepalive_requests_session(srv):
    s = requests.Session()
    ports = set()
    for _ in range(20):
        r = s.get(srv.url("/healthz"), timeout=10, stream=True)
        ports.add(r.raw._connection.sock.getsockname()[1] if r.raw._connection else None)
        assert r.status_code == 200
        r.content
    s.close()
    assert len(ports) == 1, ports


def test_connection_close_honoured(srv):
    with srv.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        assert r is not None and r.status == 200
        assert c.wait_closed(5)


def test_http10_closes(srv):
    with srv.connect() as c:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r is not None and r.status == 200
        assert c.wait_closed(5)


# ----------------------------------------------------------------------------- timeouts
def test_partial_header_dropped_after_read_timeout(tsrv):
    with tsrv.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        assert c.wait_closed(6), "server kept a half-sent request open past read_timeout"
        assert time.monotonic() - t0 >= 1.0


def test_slowloris_dropped(tsrv):
    with tsrv.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 7:
            try:
                c.send(b"X")
            except OSError:
                closed = True
                break
            if c.wait_closed(0.4):
                closed = True
                break
        assert closed, "a dripping request was not dropped after read_timeout"
        assert time.monotonic() - t0 < 6


def test_partial_body_dropped(tsrv):
    with tsrv.connect() as c:
        c.send(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"acc")
        assert c.wait_closed(6)


def test_silent_connection_dropped(tsrv):
    with tsrv.connect() as c:
        assert c.wait_closed(6)


def test_idle_keepalive_closed(tsrv):
    with tsrv.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        # shorter than the idle timeout: still usable
        time.sleep(1.0)
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.wait_closed(6), "idle keep-alive connection was not closed"
        assert time.monotonic() - t0 >= 1.0
    assert tsrv.get("/healthz").status_code == 200


# ----------------------------------------------------------------------------- malformed
MALFORMED = [
    b"\x00\xff\xfe garbage \x01\x02\r\n\r\n",
    b"HELLO\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /healthz\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nBad header line without colon\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
    b"GET /healthz HTTP/1.1\r\n : \r\n\r\n",
    b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\r\n\r\n\r\n\r\n",
    b"G" * 20000 + b"\r\n\r\n",
]


@pytest.mark.parametrize("payload", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_http(srv, payload):
    with srv.connect() as c:
        try:
            c.send(payload)
            resp = c.read_response(timeout=20)
        except (ConnectionResetError, BrokenPipeError):
            resp = None
    if resp is not None:
        assert 400 <= resp.status < 500, resp
        assert resp.status != 404 or payload.startswith(b"GET /heal\x00"), resp
    r = srv.get("/healthz")
    assert r.status_code == 200


def test_garbage_then_healthz(srv):
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            s.sendall(bytes(range(256)) * 8)
        except OSError:
            pass
        s.close()
    assert srv.get("/healthz").status_code == 200


def test_many_connections(srv):
    conns = [RawConn("127.0.0.1", srv.port) for _ in range(50)]
    try:
        for c in conns:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            r = c.read_response()
            assert r is not None and r.status == 200
    finally:
        for c in conns:
            c.close()
