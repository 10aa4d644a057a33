"""Durability across kill -9, graceful shutdown, port reuse."""

import signal
import socket
import threading
import time

import requests

from e2e_helpers import (USER_PASSWORD, assert_error, free_port, make_png, unique, upload_photo)


def test_register_durable_across_kill9(server_factory):
    s = server_factory()
    acct = unique("dur")
    r = s.register(acct)
    assert r.status_code == 200, r.text
    s.kill9()  # immediately after the 200
    s.start()
    tok = s.login(acct, USER_PASSWORD)
    assert s.info(tok)["account"] == acct


def test_many_acks_durable_across_kill9(server_factory):
    s = server_factory()
    accts = [unique("many") for _ in range(10)]
    for a in accts:
        assert s.register(a).status_code == 200
    a0, pw0, tok0, _ = s.create_user()
    r = s.post("/api/user/set_profile", tok0, json={"nickname": "Durable", "phone": "12345"})
    assert r.status_code == 200
    r = s.post("/api/user/set_password", tok0,
               json={"old_password": pw0, "new_password": "durable-pw-1"})
    assert r.status_code == 200
    png = make_png(5, 5, (9, 9, 9))
    r = upload_photo(s, tok0, png)
    assert r.status_code == 200, r.text
    photo = r.json()["photo"]
    s.kill9()
    s.start()
    for a in accts:
        s.login(a, USER_PASSWORD)
    tok = s.login(a0, "durable-pw-1")
    info = s.info(tok)
    assert info["nickname"] == "Durable" and info["phone"] == "12345"
    assert info["photo"] == photo
    g = requests.get(s.url(photo), timeout=10)
    assert g.status_code == 200 and g.content == png


def test_logout_revocation_durable(server_factory):
    s = server_factory()
    acct, pw, tok, _ = s.create_user()
    keep = s.login(acct, pw)
    assert s.post("/api/auth/logout", tok).status_code == 200
    s.kill9()
    s.start()
    assert_error(s.get("/api/user/info", tok), 401, "Invalid token")
    assert s.get("/api/user/info", keep).status_code == 200


def test_delete_durable(server_factory):
    s = server_factory()
    acct, pw, tok, _ = s.create_user()
    assert s.request("DELETE", f"/api/admin/users/{acct}", s.admin_token()).status_code == 200
    s.kill9()
    s.start()
    assert_error(s.login_resp(acct, pw), 404, "Account not found")
    assert_error(s.get("/api/user/info", tok), 401, "User not include")


def test_sigterm_graceful_and_port_reuse(server_factory):
    port = free_port()
    s = server_factory(port=port)
    assert s.port == port
    # leave some server-closed connections behind (TIME_WAIT on the server side)
    for _ in range(5):
        with s.connect() as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert c.read_response().status == 200
            c.wait_closed(5)
    # and one idle keep-alive connection that is still open
    idle = s.connect()
    idle.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.read_response().status == 200
    took = s.stop(signal.SIGTERM, timeout=15)
    assert took < 5, f"SIGTERM shutdown took {took:.1f}s"
    assert "shut" in s.log_text().lower(), "log does not mention shutdown"
    idle.close()
    # restart on the same port at once
    s.start()
    assert s.port == port
    assert s.get("/healthz").status_code == 200
    s.login("admin", s.admin_password)


def test_sigint_graceful(server_factory):
    s = server_factory()
    took = s.stop(signal.SIGINT, timeout=15)
    assert took < 5


def test_shutdown_with_inflight_requests(server_factory):
    s = server_factory()
    stop = threading.Event()
    errors = []

    def hammer():
        while not stop.is_set():
            try:
                r = requests.get(s.url("/healthz"), timeout=5)
                if r.status_code not in (200, 503):
                    errors.append(r.status_code)
            except requests.RequestException:
                pass

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    try:
        took = s.stop(signal.SIGTERM, timeout=15)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert took < 10
    assert not errors, errors


def test_port_in_use_fails_cleanly(server_factory, tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        s = server_factory(port=port, start=False)
        try:
            s.start()
            started = True
        except Exception:
            started = False
        assert not started, "gpuhubd started on a port that is already listening"
        assert s.proc.poll() is not None and s.proc.returncode != 0
        s._expected_exit = True
    finally:
        blocker.close()
