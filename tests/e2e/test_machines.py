"""Machines: the admin API, `gpuhubd machine ...`, GET /api/machines/info, the browser
WebSocket /ws and the agent protocol on /ws/agent (driven by a simulated agent).

Tests with a real gpuhub-agent are in test_agent.py.
"""

import json
import os
import subprocess
import threading
import time

import pytest

from e2e_helpers import (GPU_KEYS, GPUHUB_BIN, ISO_Z_RE, MACHINE_KEYS, SANITIZER_MARKERS,
                         add_machine, agent_ws, assert_error, machine_info, machines_info,
                         sim_gpu, sim_inventory, unique, wait_online, ws_auth,
                         ws_connect, ws_recv, ws_recv_until, ws_send, ws_wait_closed)

HEARTBEAT = 0.5  # seconds; the server's agent heartbeat interval in this module
ID_MESSAGE = ("id must be 1-64 characters of letters, digits, '.', '_' or '-', "
              "starting with a letter or digit")


@pytest.fixture(scope="module")
def msrv(module_server_factory):
    return module_server_factory(config=f"heartbeat = {HEARTBEAT}\n")


def is_machine_event(machine_id, online):
    return lambda m: m == {"type": "machine", "data": {"id": machine_id, "online": online}}


# --------------------------------------------------------------------------
# Admin API
# --------------------------------------------------------------------------
def test_add_machine_returns_token(msrv):
    mid = unique("node-")
    r = msrv.post("/api/admin/machines", msrv.admin_token(), json={"id": mid})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "agent_token"}
    assert body["id"] == mid
    assert isinstance(body["agent_token"], str) and len(body["agent_token"]) >= 32
    # each machine gets its own token
    _, other = add_machine(msrv)
    assert other != body["agent_token"]


@pytest.mark.parametrize("mid", [
    "a", "A", "0", "node-01", "n.o_d-e", "x" * 64, "9lives", "Node.Example_1"])
def test_add_machine_valid_ids(msrv, mid):
    mid = mid if len(mid) == 64 else f"{mid}{unique('v')}"[:64]
    r = msrv.post("/api/admin/machines", msrv.admin_token(), json={"id": mid})
    assert r.status_code == 200, (mid, r.text)
    assert r.json()["id"] == mid
    assert machine_info(msrv, mid) is not None
    # the id works in the URL of the other endpoints
    r = msrv.post(f"/api/admin/machines/{mid}/token", msrv.admin_token())
    assert r.status_code == 200 and r.json()["id"] == mid, r.text
    assert msrv.request("DELETE", f"/api/admin/machines/{mid}",
                        msrv.admin_token()).status_code == 200
    assert machine_info(msrv, mid) is None


@pytest.mark.parametrize("mid", [
    "", "-node", ".node", "_node", "no de", "node/1", "node\n", "x" * 65, "nöde", "node:1",
    "node%2F", "../etc"])
def test_add_machine_bad_ids(msrv, mid):
    before = machines_info(msrv)
    r = msrv.post("/api/admin/machines", msrv.admin_token(), json={"id": mid})
    assert_error(r, 400, ID_MESSAGE)
    assert machines_info(msrv) == before


@pytest.mark.parametrize("body,message", [
    ({"id": 1}, "Field id must be a string"),
    ({"id": None}, "Field id must be a string"),
    ({"id": ["a"]}, "Field id must be a string"),
    ({"id": {"x": 1}}, "Field id must be a string"),
    ({"id": True}, "Field id must be a string"),
    ({}, "Missing field: id"),
    ({"id": "okname", "token": "x"}, "Unknown field: token"),
    ({"id": "okname", "agent_token": "x"}, "Unknown field: agent_token"),
    ([], "Request body must be a JSON object"),
    ("node", "Request body must be a JSON object"),
    (1, "Request body must be a JSON object"),
])
def test_add_machine_wrong_types_and_fields(msrv, body, message):
    r = msrv.post("/api/admin/machines", msrv.admin_token(), json=body)
    assert_error(r, 400, message)
    assert "okname" not in [m["id"] for m in machines_info(msrv)]


def test_add_machine_invalid_json(msrv):
    for raw in (b"", b"{", b"{\"id\": \"x\",}", b"\xff\xfe", b"null"):
        r = msrv.post("/api/admin/machines", msrv.admin_token(), data=raw,
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.status_code, r.text)
        assert isinstance(r.json()["message"], str)


def test_add_machine_duplicate_409(msrv):
    mid, tok = add_machine(msrv)
    r = msrv.post("/api/admin/machines", msrv.admin_token(), json={"id": mid})
    assert_error(r, 409, "Machine already exists")
    # the first token still works
    ws, reply = agent_ws(msrv, tok)
    try:
        assert reply["type"] == "auth" and reply["data"]["machine_id"] == mid
    finally:
        ws.close()


def test_machine_admin_endpoints_need_admin(msrv):
    mid, _ = add_machine(msrv)
    _, _, user_tok, _ = msrv.create_user()
    calls = [("POST", "/api/admin/machines", {"id": unique("nope")}),
             ("GET", "/api/admin/machines", None),
             ("DELETE", f"/api/admin/machines/{mid}", None),
             ("POST", f"/api/admin/machines/{mid}/token", None)]
    for method, path, body in calls:
        assert_error(msrv.request(method, path, user_tok, json=body), 403, "Permission denied")
        assert_error(msrv.request(method, path, None, json=body), 401, "Token Not Found")
        assert_error(msrv.request(method, path, "not-a-token", json=body), 401, "Invalid token")
    # nothing changed: the machine is still there and its token unchanged
    assert machine_info(msrv, mid) is not None


def test_list_machines(msrv):
    mid, tok = add_machine(msrv)
    r = msrv.get("/api/admin/machines", msrv.admin_token())
    assert r.status_code == 200, r.text
    rows = r.json()
    assert isinstance(rows, list)
    row = next(m for m in rows if m["id"] == mid)
    assert set(row) == {"id", "ip", "created_at", "last_seen"}, row
    assert ISO_Z_RE.match(row["created_at"]), row
    assert row["last_seen"] is None
    assert row["ip"] == ""
    assert [m["id"] for m in rows] == sorted(m["id"] for m in rows)
    # no agent token (plain or hashed) is ever listed
    assert tok not in r.text and "token" not in r.text
    # after a connection: ip and last_seen
    ws, reply = agent_ws(msrv, tok)
    ws.close()
    row = next(m for m in msrv.get("/api/admin/machines", msrv.admin_token()).json()
               if m["id"] == mid)
    assert row["ip"] == "127.0.0.1"
    assert ISO_Z_RE.match(row["last_seen"]), row


def test_delete_machine(msrv):
    mid, tok = add_machine(msrv)
    r = msrv.request("DELETE", f"/api/admin/machines/{mid}", msrv.admin_token())
    assert r.status_code == 200, r.text
    assert machine_info(msrv, mid) is None
    assert mid not in [m["id"] for m in msrv.get("/api/admin/machines",
                                                  msrv.admin_token()).json()]
    r = msrv.request("DELETE", f"/api/admin/machines/{mid}", msrv.admin_token())
    assert_error(r, 404, "Machine not found")
    assert_error(msrv.request("DELETE", "/api/admin/machines/never-there", msrv.admin_token()),
                 404, "Machine not found")
    # its token is dead
    ws, reply = agent_ws(msrv, tok)
    assert reply == {"type": "error", "data": {"message": "Invalid agent token"}}
    assert ws_wait_closed(ws)
    # and the id can be added again, with a new token
    _, tok2 = add_machine(msrv, mid)
    assert tok2 != tok


def test_delete_connected_machine_kicks_agent(msrv):
    mid, tok = add_machine(msrv)
    browser = ws_auth(msrv, msrv.admin_token())
    ws, reply = agent_ws(msrv, tok)
    try:
        assert reply["type"] == "auth"
        ws_recv_until(browser, is_machine_event(mid, True))
        r = msrv.request("DELETE", f"/api/admin/machines/{mid}", msrv.admin_token())
        assert r.status_code == 200, r.text
        assert ws_wait_closed(ws, 3), "the deleted machine's agent connection stayed open"
        assert machine_info(msrv, mid) is None
        # browsers learn that the machine is gone
        ws_recv_until(browser, is_machine_event(mid, False), timeout=3)
    finally:
        ws.close()
        browser.close()


def test_rotate_token(msrv):
    mid, old = add_machine(msrv)
    browser = ws_auth(msrv, msrv.admin_token())
    ws, reply = agent_ws(msrv, old)
    try:
        assert reply["type"] == "auth" and reply["data"]["machine_id"] == mid
        ws_send(ws, "inventory", sim_inventory())
        wait_online(msrv, mid, True, pred=lambda m: m["gpu"])
        ws_recv_until(browser, is_machine_event(mid, True))
        r = msrv.post(f"/api/admin/machines/{mid}/token", msrv.admin_token())
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"id", "agent_token"} and body["id"] == mid
        new = body["agent_token"]
        assert new != old
        # the connected agent is kicked, the machine goes offline at once
        assert ws_wait_closed(ws, 3), "rotating the token left the agent connected"
        assert machine_info(msrv, mid)["online"] is False
        ws_recv_until(browser, is_machine_event(mid, False), timeout=3)
    finally:
        ws.close()
        browser.close()
    # the old token is refused, the new one works
    ws, reply = agent_ws(msrv, old)
    assert reply == {"type": "error", "data": {"message": "Invalid agent token"}}
    assert ws_wait_closed(ws)
    ws, reply = agent_ws(msrv, new)
    try:
        assert reply["type"] == "auth" and reply["data"]["machine_id"] == mid
        assert machine_info(msrv, mid)["online"] is True
    finally:
        ws.close()
    assert_error(msrv.post("/api/admin/machines/never-there/token", msrv.admin_token()),
                 404, "Machine not found")


def test_machine_methods(msrv):
    mid, _ = add_machine(msrv)
    a = msrv.admin_token()
    for method, path in [("PUT", "/api/admin/machines"), ("DELETE", "/api/admin/machines"),
                         ("GET", f"/api/admin/machines/{mid}/token"),
                         ("POST", "/api/machines/info"), ("DELETE", "/api/machines/info")]:
        assert_error(msrv.request(method, path, a), 405)


def test_agent_token_is_not_a_user_token(msrv):
    mid, tok = add_machine(msrv)
    for path in ("/api/user/info", "/api/machines/info", "/api/admin/machines"):
        assert_error(msrv.get(path, tok), 401, "Invalid token")
    assert_error(msrv.post("/api/admin/machines", tok, json={"id": unique("x")}), 401,
                 "Invalid token")
    # nor on the browser WebSocket
    ws = ws_connect(msrv)
    ws_send(ws, "auth", {"token": tok})
    assert ws_recv(ws) == {"type": "error", "data": {"message": "Invalid token"}}
    assert ws_wait_closed(ws)


def test_user_token_is_not_an_agent_token(msrv):
    add_machine(msrv)
    for tok in (msrv.admin_token(), msrv.create_user()[2]):
        ws, reply = agent_ws(msrv, tok)
        assert reply == {"type": "error", "data": {"message": "Invalid agent token"}}
        assert ws_wait_closed(ws), "/ws/agent stayed open after an invalid agent token"


def test_agent_token_stored_hashed(msrv):
    mid, tok = add_machine(msrv)
    _, tok2 = add_machine(msrv)
    r = msrv.post(f"/api/admin/machines/{mid}/token", msrv.admin_token())
    tok3 = r.json()["agent_token"]
    dump = "\n".join(msrv.db_snapshot())
    for t in (tok, tok2, tok3):
        assert t not in dump
        assert t.split("-")[-1] not in dump


def test_machines_durable_across_kill9(server_factory):
    s = server_factory(config=f"heartbeat = {HEARTBEAT}\n")
    kept, kept_tok = add_machine(s)
    rotated, old_tok = add_machine(s)
    new_tok = s.post(f"/api/admin/machines/{rotated}/token", s.admin_token()).json()["agent_token"]
    deleted, deleted_tok = add_machine(s)
    assert s.request("DELETE", f"/api/admin/machines/{deleted}", s.admin_token()).status_code == 200
    s.kill9()
    s.start()
    assert [m["id"] for m in machines_info(s)] == sorted([kept, rotated])
    for tok, ok in ((kept_tok, True), (new_tok, True), (old_tok, False), (deleted_tok, False)):
        ws, reply = agent_ws(s, tok)
        try:
            assert (reply["type"] == "auth") is ok, (tok, reply)
        finally:
            ws.close()


# --------------------------------------------------------------------------
# GET /api/machines/info
# --------------------------------------------------------------------------
def check_machine_shape(m):
    extra = set(m) - MACHINE_KEYS
    assert MACHINE_KEYS <= set(m), f"missing keys {MACHINE_KEYS - set(m)} in {m}"
    # The contract shows no other keys. "hostname" is reported in addition (see the
    # report); anything else is a contract violation.
    assert extra <= {"hostname"}, f"keys not in the contract: {extra}"
    assert isinstance(m["id"], str) and isinstance(m["ip"], str)
    assert isinstance(m["online"], bool)
    assert m["last_seen"] is None or ISO_Z_RE.match(m["last_seen"]), m["last_seen"]
    assert isinstance(m["gpu"], list)
    for i, g in enumerate(m["gpu"]):
        assert set(g) == GPU_KEYS, g
        assert g["index"] == i
        for k in ("memory_total", "memory_used", "utilization", "temperature"):
            assert isinstance(g[k], int) and not isinstance(g[k], bool), (k, g)
        assert isinstance(g["uuid"], str) and isinstance(g["name"], str)
        assert g["task_id"] is None and g["account"] is None
    if m["cpu"] is not None:
        assert set(m["cpu"]) == {"name", "cores", "usage"}, m["cpu"]
        assert isinstance(m["cpu"]["name"], str) and isinstance(m["cpu"]["cores"], int)
        assert isinstance(m["cpu"]["usage"], (int, float)) and 0 <= m["cpu"]["usage"] <= 100
    for k in ("memory", "disk"):
        if m[k] is not None:
            assert set(m[k]) == {"total", "used"}, m[k]
            assert all(isinstance(v, int) and v >= 0 for v in m[k].values()), m[k]


def test_info_never_connected_machine(msrv):
    mid, _ = add_machine(msrv)
    _, _, user_tok, _ = msrv.create_user()
    r = msrv.get("/api/machines/info", user_tok)  # every signed-in user may read it
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    m = next(m for m in r.json() if m["id"] == mid)
    assert m == {"id": mid, "ip": None, "online": False, "last_seen": None, "gpu": [],
                 "cpu": None, "memory": None, "disk": None}


def test_info_needs_token(msrv):
    assert_error(msrv.get("/api/machines/info"), 401, "Token Not Found")
    assert_error(msrv.get("/api/machines/info", "x.y.z"), 401, "Invalid token")


def test_info_sorted_by_id(msrv):
    tag = unique("s")
    ids = [f"b-{tag}", f"a-{tag}", f"A-{tag}", f"a-{tag}0", f"9-{tag}", f"a.{tag}", f"a_{tag}"]
    for mid in ids:
        add_machine(msrv, mid)
    got = [m["id"] for m in machines_info(msrv)]
    assert got == sorted(got)
    assert [i for i in got if i in ids] == sorted(ids)


def test_info_after_inventory(msrv):
    mid, tok = add_machine(msrv)
    ws, reply = agent_ws(msrv, tok)
    try:
        assert reply["type"] == "auth"
        assert reply["data"]["ok"] is True and reply["data"]["machine_id"] == mid
        # online at once, even before the inventory; nothing measured yet
        m = machine_info(msrv, mid)
        check_machine_shape(m)
        assert m["online"] is True and m["gpu"] == [] and m["ip"] == "127.0.0.1"
        assert m["cpu"] is None and m["memory"] is None and m["disk"] is None
        assert ISO_Z_RE.match(m["last_seen"])
        gpus = [sim_gpu(0, memory_used=1024, utilization=37, temperature=45, processes=[4242],
                        name="NVIDIA A100-SXM4-40GB", memory_total=40960, uuid="GPU-a"),
                sim_gpu(1, uuid="GPU-b")]
        ws_send(ws, "inventory", sim_inventory(gpus))
        m = wait_online(msrv, mid, True, pred=lambda m: m["gpu"])
        check_machine_shape(m)
        assert m["gpu"][0] == {"index": 0, "uuid": "GPU-a", "name": "NVIDIA A100-SXM4-40GB",
                               "memory_total": 40960, "memory_used": 1024, "utilization": 37,
                               "temperature": 45, "task_id": None, "account": None}
        assert m["gpu"][1]["uuid"] == "GPU-b"
        assert m["cpu"] == {"name": "Sim CPU", "cores": 8, "usage": 12.5}
        assert m["memory"] == {"total": 32000, "used": 1000}
        assert m["disk"] == {"total": 500, "used": 100}
        assert m["ip"] == "127.0.0.1"
        # a heartbeat diff changes only what it names
        ws_send(ws, "heartbeat", {"changes": {
            "gpu": [dict(gpus[0], memory_used=2048), gpus[1]],
            "cpu": {"name": "Sim CPU", "cores": 8, "usage": 50}}})
        m = wait_online(msrv, mid, True, pred=lambda m: m["gpu"][0]["memory_used"] == 2048)
        assert m["cpu"]["usage"] == 50 and m["memory"] == {"total": 32000, "used": 1000}
        # an empty heartbeat changes nothing
        ws_send(ws, "heartbeat", {"changes": {}})
        ws_send(ws, "heartbeat", {})
        time.sleep(0.2)
        assert machine_info(msrv, mid)["gpu"] == m["gpu"]
    finally:
        ws.close()
    # offline at once on close, the last report is kept
    m = wait_online(msrv, mid, False, timeout=2)
    check_machine_shape(m)
    assert m["gpu"][0]["memory_used"] == 2048 and m["cpu"] is not None


# --------------------------------------------------------------------------
# /ws/agent protocol (simulated agent)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["2", "0", 2, "1.0", "", None, "v1", ["1"]])
def test_agent_incompatible_version(msrv, version):
    mid, tok = add_machine(msrv)
    ws = ws_connect(msrv, "/ws/agent")
    data = {"token": tok}
    if version is not None:
        data["version"] = version
    ws_send(ws, "auth", data)
    m = ws_recv(ws)
    assert m["type"] == "error", m
    msg = m["data"]["message"]
    assert "ncompatible" in msg and "version" in msg and "1" in msg, msg
    assert ws_wait_closed(ws)
    assert machine_info(msrv, mid)["online"] is False


@pytest.mark.parametrize("first", [
    {"type": "heartbeat", "data": {}},
    {"type": "inventory", "data": {}},
    {"type": "AUTH", "data": {"version": "1"}},
    {"type": "auth"},
    {"type": "auth", "data": "token"},
    {"data": {"token": "x", "version": "1"}},
    "not json",
    "[1, 2]",
])
def test_agent_first_message_not_auth(msrv, first):
    ws = ws_connect(msrv, "/ws/agent")
    ws.send(first if isinstance(first, str) else json.dumps(first))
    m = ws_recv(ws)
    assert m["type"] == "error" and isinstance(m["data"]["message"], str), m
    assert ws_wait_closed(ws)


def test_agent_auth_without_token(msrv):
    for data in ({"version": "1"}, {"version": "1", "token": 5}, {"version": "1", "token": ""},
                 {"version": "1", "token": "gpuhub-agent-" + "0" * 64}):
        ws = ws_connect(msrv, "/ws/agent")
        ws_send(ws, "auth", data)
        assert ws_recv(ws) == {"type": "error", "data": {"message": "Invalid agent token"}}
        assert ws_wait_closed(ws)


def test_agent_bad_messages_after_auth(msrv):
    """Errors after auth are answered; the connection and the machine stay up."""
    mid, tok = add_machine(msrv)
    ws, reply = agent_ws(msrv, tok)
    try:
        assert reply["type"] == "auth"
        # a heartbeat with changes before any inventory
        ws_send(ws, "heartbeat", {"changes": {"cpu": {"name": "x", "cores": 1, "usage": 1}}})
        assert ws_recv(ws)["type"] == "error"
        ws_send(ws, "inventory", sim_inventory())
        bad = [
            ("frob", {}),
            ("inventory", {}),
            ("inventory", {"gpu": 5}),
            ("inventory", dict(sim_inventory(), gpu=[sim_gpu(0, utilization=101)])),
            ("inventory", dict(sim_inventory(), gpu=[sim_gpu(0, memory_used=-1)])),
            ("inventory", dict(sim_inventory(), cpu={"name": "x", "cores": 1, "usage": 1e309})),
            ("heartbeat", {"changes": []}),
            ("heartbeat", {"changes": {"gpu": "x"}}),
            ("heartbeat", {"changes": {"cpu": {"usage": 5}}}),
            ("heartbeat", {"changes": {"memory": {"total": -5, "used": 0}}}),
        ]
        for type_, data in bad:
            ws_send(ws, type_, data)
            m = ws_recv(ws)
            assert m["type"] == "error" and m["data"]["message"], (type_, data, m)
        ws.send("not json")
        assert ws_recv(ws)["type"] == "error"
        # the machine keeps the last good inventory and stays online
        m = machine_info(msrv, mid)
        assert m["online"] is True
        good = {k: v for k, v in sim_gpu(0).items() if k != "processes"}
        assert m["gpu"] == [dict(good, task_id=None, account=None)]
        assert m["memory"] == {"total": 32000, "used": 1000}
        assert m["cpu"] == {"name": "Sim CPU", "cores": 8, "usage": 12.5}
    finally:
        ws.close()


def test_agent_unknown_type_message(msrv):
    mid, tok = add_machine(msrv)
    ws, _ = agent_ws(msrv, tok)
    try:
        ws_send(ws, "frob", {})
        assert ws_recv(ws) == {"type": "error", "data": {"message": "Unknown type: frob"}}
    finally:
        ws.close()


def test_agent_missed_heartbeats_go_offline(msrv):
    """No heartbeat for 3 intervals: offline, and the server closes the connection."""
    mid, tok = add_machine(msrv)
    ws, reply = agent_ws(msrv, tok)
    try:
        assert reply["data"]["heartbeat"] == HEARTBEAT
        t0 = time.monotonic()
        # heartbeats keep it online for longer than 3 intervals
        while time.monotonic() - t0 < 4 * HEARTBEAT:
            ws_send(ws, "heartbeat", {"changes": {}})
            last = time.monotonic()
            time.sleep(HEARTBEAT / 2)
            assert machine_info(msrv, mid)["online"] is True
        time.sleep(max(0.0, last + 2 * HEARTBEAT - time.monotonic()))
        assert machine_info(msrv, mid)["online"] is True, "offline before 3 missed heartbeats"
        wait_online(msrv, mid, False, timeout=3 * HEARTBEAT + 1.5)
        took = time.monotonic() - last
        assert 3 * HEARTBEAT - 0.1 <= took <= 3 * HEARTBEAT + 1.0, took
        assert ws_wait_closed(ws, 2), "the stale agent connection was not closed"
    finally:
        ws.close()


def test_agent_second_connection_replaces_first(msrv):
    mid, tok = add_machine(msrv)
    browser = ws_auth(msrv, msrv.admin_token())
    first, _ = agent_ws(msrv, tok)
    try:
        ws_recv_until(browser, is_machine_event(mid, True))
        second, reply = agent_ws(msrv, tok)
        try:
            assert reply["type"] == "auth"
            assert ws_wait_closed(first, 3), "the replaced connection stayed open"
            # replacement is not an outage
            time.sleep(0.2)
            assert machine_info(msrv, mid)["online"] is True
            ws_send(second, "inventory", sim_inventory())
            wait_online(msrv, mid, True, pred=lambda m: m["gpu"])
        finally:
            second.close()
        # the next event for this machine is the offline of the second connection:
        # the replacement itself sent none
        ev = ws_recv_until(browser, lambda m: m["type"] == "machine" and m["data"]["id"] == mid,
                           timeout=3)
        assert ev["data"]["online"] is False, ev
    finally:
        first.close()
        browser.close()


def test_agent_ip_from_inventory(msrv):
    mid, tok = add_machine(msrv)
    ws, _ = agent_ws(msrv, tok)
    try:
        ws_send(ws, "inventory", sim_inventory(ip="10.0.0.5"))
        m = wait_online(msrv, mid, True, pred=lambda m: m["gpu"])
        assert m["ip"] == "10.0.0.5"
    finally:
        ws.close()


def test_agent_large_message_closed(msrv):
    mid, tok = add_machine(msrv)
    ws, _ = agent_ws(msrv, tok)
    try:
        ws.send(json.dumps({"type": "heartbeat", "data": {"pad": "x" * (2 << 20)}}))
        assert ws_wait_closed(ws, 5)
        wait_online(msrv, mid, False, timeout=2)
    finally:
        ws.close()
    assert msrv.get("/healthz").status_code == 200


# --------------------------------------------------------------------------
# Browser WebSocket /ws
# --------------------------------------------------------------------------
def test_ws_auth_ok(msrv):
    acct, _, tok, _ = msrv.create_user()
    ws = ws_connect(msrv)
    try:
        ws_send(ws, "auth", {"token": tok})
        assert ws_recv(ws) == {"type": "auth", "data": {"ok": True, "account": acct}}
        ws_send(ws, "frob", {})
        assert ws_recv(ws) == {"type": "error", "data": {"message": "Unknown type: frob"}}
        ws_send(ws, "container")  # no data: a container reply saying what is missing
        assert ws_recv(ws) == {"type": "container", "data": {
            "opt": None, "request_id": None, "ok": False,
            "message": "Field opt must be one of create, start, stop, restart, delete, list"}}
        # still open and answering
        ws_send(ws, "zzz", {})
        assert ws_recv(ws) == {"type": "error", "data": {"message": "Unknown type: zzz"}}
    finally:
        ws.close()


def test_ws_auth_errors(msrv):
    acct, pw, tok, _ = msrv.create_user()
    revoked = msrv.login(acct, pw)
    assert msrv.post("/api/auth/logout", revoked).status_code == 200
    gone_acct, _, gone_tok, _ = msrv.create_user()
    assert msrv.request("DELETE", f"/api/admin/users/{gone_acct}",
                        msrv.admin_token()).status_code == 200
    cases = [("garbage", "Invalid token"), ("a.b.c", "Invalid token"),
             (tok[:-2] + ("AA" if not tok.endswith("AA") else "BB"), "Invalid token"),
             (revoked, "Invalid token"), ("", "Token Not Found"),
             (gone_tok, "User not include")]
    for token, message in cases:
        ws = ws_connect(msrv)
        ws_send(ws, "auth", {"token": token})
        assert ws_recv(ws) == {"type": "error", "data": {"message": message}}, token
        assert ws_wait_closed(ws), f"/ws stayed open after a bad token {token!r}"


@pytest.mark.parametrize("first", [
    {"type": "auth", "data": {}},
    {"type": "auth", "data": {"token": 5}},
    {"type": "auth"},
    {"type": "hello", "data": {"token": "x"}},
    "not json",
    "",
])
def test_ws_first_message_not_auth(msrv, first):
    ws = ws_connect(msrv)
    ws.send(first if isinstance(first, str) else json.dumps(first))
    m = ws_recv(ws)
    assert m["type"] == "error" and "auth" in m["data"]["message"], m
    assert ws_wait_closed(ws)


def test_ws_machine_events(msrv):
    mid, tok = add_machine(msrv)
    _, _, user_tok, _ = msrv.create_user()
    browser = ws_auth(msrv, user_tok)
    # a connection that has not authenticated gets no events
    pending = ws_connect(msrv)
    try:
        ws, reply = agent_ws(msrv, tok)
        assert reply["type"] == "auth"
        assert ws_recv(browser) == {"type": "machine", "data": {"id": mid, "online": True}}
        ws.close()
        assert ws_recv(browser) == {"type": "machine", "data": {"id": mid, "online": False}}
        ws_send(pending, "auth", {"token": user_tok})
        assert ws_recv(pending)["type"] == "auth", "an unauthenticated /ws got events"
    finally:
        browser.close()
        pending.close()


def test_ws_auth_deadline(msrv):
    """No auth message within 10 s: both WebSockets are closed (one 11 s wait for both)."""
    t0 = time.monotonic()
    browser = ws_connect(msrv, "/ws")
    agent = ws_connect(msrv, "/ws/agent")
    closed = {}

    def watch(name, ws):
        closed[name] = ws_wait_closed(ws, 13)
        closed[name + "_at"] = time.monotonic() - t0

    threads = [threading.Thread(target=watch, args=("ws", browser)),
               threading.Thread(target=watch, args=("agent", agent))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert closed["ws"] and closed["agent"], closed
    assert 9.5 <= closed["ws_at"] <= 12.5 and 9.5 <= closed["agent_at"] <= 12.5, closed


# --------------------------------------------------------------------------
# gpuhubd machine add|list|remove|rotate-token
# --------------------------------------------------------------------------
def gpuhubd(data_dir, *args, ok=True):
    env = dict(os.environ, ASAN_OPTIONS="abort_on_error=0:detect_leaks=1")
    p = subprocess.run([str(GPUHUB_BIN), "machine", *args, "--data", str(data_dir)],
                       capture_output=True, text=True, timeout=60, env=env,
                       stdin=subprocess.DEVNULL)
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, p.stderr
    if ok is True:
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    elif ok is False:
        assert p.returncode != 0, (args, p.stdout, p.stderr)
    return p


def test_cli_add_then_serve(server_factory):
    s = server_factory(config=f"heartbeat = {HEARTBEAT}\n", start=False)
    p = gpuhubd(s.data_dir, "add", "node-01")
    token = p.stdout.rstrip("\n").split("\n")[-1]
    assert token and token == token.strip() and " " not in token, p.stdout
    assert "node-01" in p.stdout
    p2 = gpuhubd(s.data_dir, "add", "node-02")
    token2 = p2.stdout.rstrip("\n").split("\n")[-1]
    assert token2 != token
    s.start()
    assert [m["id"] for m in machines_info(s)] == ["node-01", "node-02"]
    ws, reply = agent_ws(s, token)
    try:
        assert reply["type"] == "auth" and reply["data"]["machine_id"] == "node-01"
    finally:
        ws.close()


def test_cli_errors(server_factory):
    s = server_factory(start=False)
    d = s.data_dir
    gpuhubd(d, "add", "node-01")
    p = gpuhubd(d, "add", "node-01", ok=False)
    assert "already exists" in p.stderr
    assert p.stdout == ""
    for bad in ("-x", "a b", "x" * 65, "nöde"):
        p = gpuhubd(d, "add", bad, ok=False)
        assert p.stdout == "", p.stdout
    p = gpuhubd(d, "remove", "nope", ok=False)
    assert "not found" in p.stderr.lower()
    p = gpuhubd(d, "rotate-token", "nope", ok=False)
    assert "not found" in p.stderr.lower() and p.stdout == ""
    gpuhubd(d, "add", ok=False)          # no id
    gpuhubd(d, ok=False)                 # no verb
    gpuhubd(d, "frob", "x", ok=False)    # unknown verb
    p = gpuhubd(d, "list")
    assert [l.split("\t")[0] for l in p.stdout.splitlines()] == ["node-01"]


def test_cli_list_remove_rotate(server_factory):
    s = server_factory(config=f"heartbeat = {HEARTBEAT}\n", start=False)
    d = s.data_dir
    assert gpuhubd(d, "list").stdout == ""
    tokens = {}
    for mid in ("zeta", "alpha", "mid-1"):
        tokens[mid] = gpuhubd(d, "add", mid).stdout.splitlines()[-1]
    lines = gpuhubd(d, "list").stdout.splitlines()
    assert [l.split("\t") for l in lines] == [
        ["alpha", "-", "never seen"], ["mid-1", "-", "never seen"], ["zeta", "-", "never seen"]]
    gpuhubd(d, "remove", "mid-1")
    new_alpha = gpuhubd(d, "rotate-token", "alpha").stdout.splitlines()[-1]
    assert new_alpha != tokens["alpha"]
    s.start()
    assert [m["id"] for m in machines_info(s)] == ["alpha", "zeta"]
    for tok, ok in ((tokens["alpha"], False), (new_alpha, True), (tokens["zeta"], True),
                    (tokens["mid-1"], False)):
        ws, reply = agent_ws(s, tok)
        try:
            assert (reply["type"] == "auth") is ok, reply
        finally:
            ws.close()
    wait_online(s, "zeta", False)
    s.stop()
    # seen machines are listed with their address and time
    rows = {l.split("\t")[0]: l.split("\t") for l in gpuhubd(d, "list").stdout.splitlines()}
    assert rows["alpha"][1] == "127.0.0.1" and ISO_Z_RE.match(rows["alpha"][2]), rows
    assert rows["zeta"][1] == "127.0.0.1" and ISO_Z_RE.match(rows["zeta"][2]), rows


def test_cli_against_running_server(server_factory):
    """`gpuhubd machine ...` on the data dir of a running server must either refuse
    (non-zero exit) or take effect: a token it prints with exit 0 must work, and a
    machine it removes with exit 0 must be gone."""
    s = server_factory(config=f"heartbeat = {HEARTBEAT}\n")
    p = gpuhubd(s.data_dir, "add", "live-1", ok=None)
    if p.returncode == 0:
        token = p.stdout.splitlines()[-1]
        ws, reply = agent_ws(s, token)
        ws.close()
        assert reply["type"] == "auth", \
            f"`machine add` exited 0 on a running server but its token is refused: {reply}"
    mid, tok = add_machine(s)
    p = gpuhubd(s.data_dir, "remove", mid, ok=None)
    if p.returncode == 0:
        ws, reply = agent_ws(s, tok)
        ws.close()
        assert reply["type"] == "error", \
            "`machine remove` exited 0 on a running server but the machine's token still works"
        assert machine_info(s, mid) is None
