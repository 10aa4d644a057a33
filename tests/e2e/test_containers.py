"""Containers (contract sections 5 and 6) end to end: gpuhubd, a gpuhub-agent
with --docker-host, and a real private Podman service (the `podman` fixture)
running the busybox test image, whose httpd serves /www on port 8080."""

from __future__ import annotations

import random
import time

import pytest
import requests

from e2e_helpers import (Podman, add_machine, assert_error, auth, unique, wait_online,
                         wait_until, ws_connect, ws_recv, ws_recv_until, ws_send)


class Cluster:
    """One server, one machine whose agent drives Podman, a catalog image and users."""

    def __init__(self, srv, podman, agent_factory):
        self.srv = srv
        self.podman = podman
        self.admin = srv.admin_token()
        self.machine, token = add_machine(srv)
        base = random.randrange(40000, 49000, 100)
        self.port_range = (base, base + 99)
        self.agent = agent_factory(
            srv, token, heartbeat=0.3,
            extra_args=["--docker-host", podman.docker_host,
                        "--port-range", f"{base}-{base + 99}"])
        self.agent_token = token
        wait_online(srv, self.machine)
        r = srv.post("/api/admin/images", self.admin,
                     json={"name": "Busybox httpd", "image": podman.image,
                           "description": "test image"})
        assert r.status_code == 200, r.text
        self.image_id = r.json()["id"]
        self.alice = srv.create_user(unique("alice"))
        self.bob = srv.create_user(unique("bob"))

    def create(self, who, name=None, port=8080, machine=None, image_id=None):
        body = {"machine_id": machine or self.machine, "image_id": image_id or self.image_id,
                "port": port}
        if name is not None:
            body["name"] = name
        return self.srv.post("/api/containers", who[2], json=body, timeout=90)

    def act(self, who, cid, op):
        return self.srv.post(f"/api/containers/{cid}/{op}", who[2], timeout=90)

    def delete(self, who, cid):
        return self.srv.request("DELETE", f"/api/containers/{cid}", who[2], timeout=90)

    def mine(self, who, query=""):
        r = self.srv.get("/api/containers" + query, who[2])
        assert r.status_code == 200, r.text
        return r.json()

    def record(self, who, cid):
        found = [c for c in self.mine(who) if c["id"] == cid]
        return found[0] if found else None

    def runtime(self, name):
        found = [c for c in self.podman.containers() if name in c.get("Names", [])]
        return found[0] if found else None


@pytest.fixture(scope="module")
def cluster(srv, podman, module_agent_factory) -> Cluster:
    return Cluster(srv, podman, module_agent_factory)


def fetch(port: int, timeout: float = 20.0) -> str:
    """The test image's index page through a published host port (httpd may need a moment)."""
    last = None

    def ok():
        nonlocal last
        try:
            r = requests.get(f"http://127.0.0.1:{port}/index.html", timeout=2)
            last = r.status_code
            return r.status_code == 200 and Podman.INDEX_TEXT in r.text
        except requests.RequestException as e:
            last = e
            return False
    wait_until(ok, timeout, interval=0.2, what=f"page on host port {port} (last: {last})")
    return Podman.INDEX_TEXT


def unreachable(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/index.html", timeout=2)
        return False
    except requests.RequestException:
        return True


# ----- image catalog ------------------------------------------------------------
def test_images_are_listed_for_every_user(cluster):
    r = cluster.srv.get("/api/images", cluster.bob[2])
    assert r.status_code == 200
    entry = [i for i in r.json() if i["id"] == cluster.image_id]
    assert entry == [{"id": cluster.image_id, "name": "Busybox httpd",
                      "image": cluster.podman.image, "description": "test image"}]


def test_only_admins_manage_images(cluster):
    srv = cluster.srv
    before = srv.db_snapshot()
    assert_error(srv.post("/api/admin/images", cluster.bob[2],
                          json={"name": "x", "image": "y"}), 403, "Permission denied")
    assert_error(srv.request("DELETE", f"/api/admin/images/{cluster.image_id}",
                             cluster.bob[2]), 403, "Permission denied")
    assert srv.db_snapshot() == before


@pytest.mark.parametrize("body,message", [
    ({"image": "x"}, "Missing field: name"),
    ({"name": "x"}, "Missing field: image"),
    ({"name": "", "image": "x"}, "name must be 1-100 characters"),
    ({"name": "x", "image": "has space"},
     "image must be an image reference of 1-255 characters without spaces"),
    ({"name": "x", "image": "y", "description": 3}, "Field description must be a string"),
    ({"name": "x", "image": "y", "extra": 1}, "Unknown field: extra"),
])
def test_bad_image_input_is_refused_and_changes_nothing(cluster, body, message):
    before = cluster.srv.db_snapshot()
    assert_error(cluster.srv.post("/api/admin/images", cluster.admin, json=body), 400, message)
    assert cluster.srv.db_snapshot() == before


def test_image_delete_unknown_bad_and_in_use(cluster):
    srv = cluster.srv
    assert_error(srv.request("DELETE", "/api/admin/images/999999", cluster.admin), 404,
                 "Image not found")
    assert_error(srv.request("DELETE", "/api/admin/images/abc", cluster.admin), 400)
    r = cluster.create(cluster.alice, name=unique("img").replace("_", "-")[:30])
    assert r.status_code == 200, r.text
    assert_error(srv.request("DELETE", f"/api/admin/images/{cluster.image_id}", cluster.admin),
                 409, "Image is used by containers")
    assert cluster.delete(cluster.alice, r.json()["id"]).status_code == 200
    extra = srv.post("/api/admin/images", cluster.admin, json={"name": "tmp", "image": "tmp:1"})
    assert extra.status_code == 200
    r = srv.request("DELETE", f"/api/admin/images/{extra.json()['id']}", cluster.admin)
    assert r.status_code == 200 and r.json() == {"message": "Deleted"}
    assert extra.json()["id"] not in [i["id"] for i in srv.get("/api/images", cluster.admin).json()]


# ----- the container's life over REST -------------------------------------------
def test_create_publishes_a_port_that_serves_the_container(cluster):
    r = cluster.create(cluster.alice, name="web")
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["name"] == "web" and c["machine_id"] == cluster.machine
    assert c["image_id"] == cluster.image_id and c["status"] == "running"
    assert c["account"] == cluster.alice[0]
    [port] = c["ports"]
    assert port["container"] == 8080
    lo, hi = cluster.port_range
    assert lo <= port["host"] <= hi
    fetch(port["host"])

    runtime = cluster.runtime(f"gpuhub-{cluster.alice[0]}-web")
    assert runtime is not None, cluster.podman.containers()
    assert runtime["Labels"]["gpuhub.owner"] == cluster.alice[0]
    assert runtime["Labels"]["gpuhub.container"] == str(c["id"])
    status, info = cluster.podman.api("GET", f"/containers/{runtime['Id']}/json")
    assert status == 200
    assert info["HostConfig"]["Privileged"] is False
    assert "CUDA_VISIBLE_DEVICES=" in info["Config"]["Env"]
    assert info["Config"]["Hostname"] == "web"
    assert not info.get("Mounts"), "nothing from the host is mounted without --home-root"

    assert cluster.record(cluster.alice, c["id"]) == c
    cluster.delete(cluster.alice, c["id"])


def test_stop_start_restart_delete(cluster):
    c = cluster.create(cluster.alice, name="cycle").json()
    host = c["ports"][0]["host"]
    fetch(host)

    r = cluster.act(cluster.alice, c["id"], "stop")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "exited"
    assert r.json()["ports"] == c["ports"], "a stopped container still shows its ports"
    assert unreachable(host)

    r = cluster.act(cluster.alice, c["id"], "start")
    assert r.status_code == 200 and r.json()["status"] == "running", r.text
    fetch(host)

    r = cluster.act(cluster.alice, c["id"], "restart")
    assert r.status_code == 200 and r.json()["status"] == "running", r.text
    fetch(host)

    r = cluster.delete(cluster.alice, c["id"])
    assert r.status_code == 200 and r.json() == {"message": "Deleted"}
    assert cluster.runtime(f"gpuhub-{cluster.alice[0]}-cycle") is None
    assert cluster.record(cluster.alice, c["id"]) is None
    assert_error(cluster.act(cluster.alice, c["id"], "start"), 404, "Container not found")


def test_other_users_get_403_and_admins_may_act(cluster):
    c = cluster.create(cluster.alice, name="private").json()
    for op in ("start", "stop", "restart"):
        assert_error(cluster.act(cluster.bob, c["id"], op), 403, "Permission denied")
    assert_error(cluster.delete(cluster.bob, c["id"]), 403, "Permission denied")
    assert c["id"] not in [x["id"] for x in cluster.mine(cluster.bob)]
    assert_error(cluster.srv.get("/api/containers?all=1", cluster.bob[2]), 403,
                 "Permission denied")
    everyone = cluster.srv.get("/api/containers?all=1", cluster.admin).json()
    assert c["id"] in [x["id"] for x in everyone]
    admin = (None, None, cluster.admin)
    r = cluster.act(admin, c["id"], "stop")
    assert r.status_code == 200 and r.json()["status"] == "exited"
    assert cluster.delete(admin, c["id"]).status_code == 200


def test_names_are_unique_per_user_and_machine(cluster):
    c = cluster.create(cluster.alice, name="dup").json()
    before = cluster.srv.db_snapshot()
    assert_error(cluster.create(cluster.alice, name="dup"), 409, "Container name already taken")
    assert cluster.srv.db_snapshot() == before
    other = cluster.create(cluster.bob, name="dup")
    assert other.status_code == 200, other.text
    assert other.json()["ports"][0]["host"] != c["ports"][0]["host"]
    for who, x in ((cluster.alice, c), (cluster.bob, other.json())):
        assert cluster.delete(who, x["id"]).status_code == 200


def test_a_name_is_generated_and_several_ports_are_published(cluster):
    r = cluster.create(cluster.alice, port=[8080, 22])
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["name"].startswith("c-")
    assert sorted(p["container"] for p in c["ports"]) == [22, 8080]
    hosts = {p["container"]: p["host"] for p in c["ports"]}
    fetch(hosts[8080])
    assert cluster.delete(cluster.alice, c["id"]).status_code == 200


@pytest.mark.parametrize("body,status,message", [
    ({"image_id": 1, "port": 22}, 400, "Missing field: machine_id"),
    ({"machine_id": "m", "port": 22}, 400, "Missing field: image_id"),
    ({"machine_id": "m", "image_id": "1"}, 400, "Field image_id must be a positive integer"),
    ({"machine_id": "m", "image_id": 1, "port": 0}, 400,
     "Field port must be a port number 1-65535 or an array of them"),
    ({"machine_id": "m", "image_id": 1, "port": [22, "x"]}, 400,
     "Field port must be a port number 1-65535 or an array of them"),
    ({"machine_id": "m", "image_id": 1, "name": "Bad Name"}, 400,
     "name must be 1-32 characters of a-z, 0-9 or '-', starting with a letter or digit"),
    ({"machine_id": "m", "image_id": 1, "bogus": 1}, 400, "Unknown field: bogus"),
])
def test_bad_create_input_is_refused_and_changes_nothing(cluster, body, status, message):
    body = dict(body)
    if body.get("machine_id") == "m":
        body["machine_id"] = cluster.machine
    if body.get("image_id") == 1:
        body["image_id"] = cluster.image_id
    before = cluster.srv.db_snapshot()
    assert_error(cluster.srv.post("/api/containers", cluster.alice[2], json=body), status, message)
    assert cluster.srv.db_snapshot() == before


def test_unknown_machine_image_and_container(cluster):
    assert_error(cluster.create(cluster.alice, name="x", machine="no-such-machine"), 404,
                 "Machine not found")
    assert_error(cluster.create(cluster.alice, name="x", image_id=999999), 404, "Image not found")
    assert_error(cluster.act(cluster.alice, 999999, "start"), 404, "Container not found")
    assert_error(cluster.act(cluster.alice, "abc", "start"), 400)
    assert_error(cluster.srv.post("/api/containers", None, json={}), 401)


def test_offline_machine_is_a_clear_503(cluster):
    srv = cluster.srv
    machine, _token = add_machine(srv)
    before = srv.db_snapshot()
    assert_error(cluster.create(cluster.alice, name="x", machine=machine), 503,
                 f"Machine {machine} is offline")
    assert srv.db_snapshot() == before


# ----- the browser WebSocket -----------------------------------------------------
def ws_container(ws, **data) -> dict:
    ws_send(ws, "container", data)
    rid = data.get("request_id")
    return ws_recv_until(ws, lambda m: m["type"] == "container"
                         and m["data"].get("request_id") == rid, timeout=90)["data"]


def test_websocket_container_operations_echo_request_ids(cluster):
    ws = ws_connect(cluster.srv)
    try:
        ws_send(ws, "auth", {"token": cluster.alice[2]})
        assert ws_recv(ws) == {"type": "auth", "data": {"ok": True, "account": cluster.alice[0]}}
        created = ws_container(ws, opt="create", machine_id=cluster.machine,
                               image_id=cluster.image_id, port=8080, name="wsdev",
                               request_id="c1")
        assert created["ok"] is True and created["opt"] == "create", created
        c = created["container"]
        assert c["name"] == "wsdev" and c["status"] == "running"
        fetch(c["ports"][0]["host"])

        listed = ws_container(ws, opt="list", request_id=7)
        assert listed["ok"] and listed["request_id"] == 7
        assert c["id"] in [x["id"] for x in listed["containers"]]

        for op, status in (("stop", "exited"), ("start", "running"), ("restart", "running")):
            r = ws_container(ws, opt=op, container_id=c["id"], request_id=f"{op}-1")
            assert r["ok"] is True, r
            assert r["opt"] == op and r["container"]["status"] == status

        bad = ws_container(ws, opt="explode", request_id="b1")
        assert bad == {"opt": "explode", "request_id": "b1", "ok": False,
                       "message": "Field opt must be one of create, start, stop, restart, "
                                  "delete, list"}
        missing = ws_container(ws, opt="stop", request_id="b2")
        assert missing["ok"] is False and missing["message"] == "Missing field: container_id"
        dup = ws_container(ws, opt="create", machine_id=cluster.machine,
                           image_id=cluster.image_id, name="wsdev", request_id="b3")
        assert dup["ok"] is False and dup["message"] == "Container name already taken"

        deleted = ws_container(ws, opt="delete", container_id=c["id"], request_id="d1")
        assert deleted["ok"] is True and deleted["container"]["status"] == "deleted"
    finally:
        ws.close()


def test_websocket_refuses_another_users_container(cluster):
    c = cluster.create(cluster.alice, name="wsprivate").json()
    ws = ws_connect(cluster.srv)
    try:
        ws_send(ws, "auth", {"token": cluster.bob[2]})
        ws_recv(ws)
        for op in ("stop", "delete"):
            r = ws_container(ws, opt=op, container_id=c["id"], request_id=op)
            assert r == {"opt": op, "request_id": op, "ok": False, "message": "Permission denied"}
    finally:
        ws.close()
    assert cluster.record(cluster.alice, c["id"])["status"] == "running"
    assert cluster.delete(cluster.alice, c["id"]).status_code == 200


# ----- reconciliation ----------------------------------------------------------------
def test_agent_killed_and_restarted_keeps_the_container(cluster):
    c = cluster.create(cluster.alice, name="survivor").json()
    host = c["ports"][0]["host"]
    cluster.agent.kill9()
    wait_online(cluster.srv, cluster.machine, online=False)
    fetch(host)  # the runtime keeps it running without the agent
    cluster.agent.start()
    wait_online(cluster.srv, cluster.machine)
    assert cluster.record(cluster.alice, c["id"])["status"] == "running"
    r = cluster.act(cluster.alice, c["id"], "restart")
    assert r.status_code == 200, r.text
    fetch(host)
    assert cluster.delete(cluster.alice, c["id"]).status_code == 200


def test_container_removed_behind_the_agents_back_is_reported_gone(cluster):
    c = cluster.create(cluster.alice, name="vanish").json()
    cluster.podman.cli("rm", "-f", f"gpuhub-{cluster.alice[0]}-vanish")
    wait_until(lambda: cluster.record(cluster.alice, c["id"])["status"] == "gone", 15,
               what="container reported gone")
    r = cluster.act(cluster.alice, c["id"], "start")
    assert r.status_code == 409, r.text
    r = cluster.delete(cluster.alice, c["id"])
    assert r.status_code == 200, r.text
    assert cluster.record(cluster.alice, c["id"]) is None


def test_container_stopped_behind_the_agents_back_shows_exited(cluster):
    c = cluster.create(cluster.alice, name="stopped").json()
    cluster.podman.cli("stop", "-t", "1", f"gpuhub-{cluster.alice[0]}-stopped")
    wait_until(lambda: cluster.record(cluster.alice, c["id"])["status"] == "exited", 15,
               what="container reported exited")
    assert cluster.delete(cluster.alice, c["id"]).status_code == 200


def test_records_survive_a_server_restart(cluster):
    c = cluster.create(cluster.alice, name="durable").json()
    port = cluster.srv.port
    cluster.srv.kill9()
    cluster.srv.listen_port = port  # the agent reconnects to the same address
    cluster.srv.start()
    wait_online(cluster.srv, cluster.machine, timeout=30)
    assert cluster.record(cluster.alice, c["id"]) == c  # tokens outlive the restart
    r = cluster.act(cluster.alice, c["id"], "restart")
    assert r.status_code == 200, r.text
    assert cluster.delete(cluster.alice, c["id"]).status_code == 200


# ----- an agent without a runtime ------------------------------------------------------
def test_agent_without_docker_host_refuses_plainly(srv, agent_factory):
    machine, token = add_machine(srv)
    agent = agent_factory(srv, token)
    wait_online(srv, machine)
    agent.wait_log("no container runtime configured")
    admin = srv.admin_token()
    img = srv.post("/api/admin/images", admin, json={"name": "n", "image": "x:1"}).json()
    user = srv.create_user(unique("carol"))
    before_count = len(srv.get("/api/containers", user[2]).json())
    r = srv.post("/api/containers", user[2],
                 json={"machine_id": machine, "image_id": img["id"], "name": "x"})
    assert_error(r, 503, contains="--docker-host")
    assert len(srv.get("/api/containers", user[2]).json()) == before_count
    srv.request("DELETE", f"/api/admin/images/{img['id']}", admin)
