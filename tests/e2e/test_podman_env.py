"""Smoke test of the container environment (the `podman` fixture, scripts/podman-service):
the private Podman service answers the Docker Engine API on its Unix socket, and a
container made from the test image through that API runs, publishes a port on
127.0.0.1 and serves the image's index.html there. If this module fails or is
skipped, every container test after it is meaningless.
"""

import random
import socket
import time
import urllib.request

import pytest

from e2e_helpers import Podman, unique, wait_until


def free_port_in(lo: int = 40000, hi: int = 49999) -> int:
    """A port in [lo, hi] that nothing listens on now (as the agent chooses them)."""
    ports = list(range(lo, hi + 1))
    random.shuffle(ports)
    for port in ports[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in {lo}-{hi}")


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode(errors="replace")
    except OSError:
        return None


def test_version_answers(podman):
    assert podman.docker_host == f"unix://{podman.socket}"
    assert podman.socket.is_socket()
    status, body = podman.api("GET", "/version")
    assert status == 200, body
    assert isinstance(body, dict) and body.get("Version") and body.get("ApiVersion"), body


def test_image_is_there(podman):
    assert podman.image == Podman.IMAGE
    status, body = podman.api("GET", f"/images/{podman.image}/json")
    assert status == 200, body
    assert body["Config"]["Cmd"] == ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"], body["Config"]


def test_container_serves_on_published_port(podman):
    port = free_port_in()
    name = unique("gpuhub-smoke-")
    status, body = podman.api("POST", f"/containers/create?name={name}", {
        "Image": podman.image,
        "ExposedPorts": {"8080/tcp": {}},
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1",
                                                      "HostPort": str(port)}]}},
    })
    assert status == 201, body
    cid = body["Id"]
    try:
        status, body = podman.api("POST", f"/containers/{cid}/start")
        assert status == 204, body
        status, body = podman.api("GET", f"/containers/{cid}/json")
        assert status == 200 and body["State"]["Running"] is True, body
        text = wait_until(lambda: fetch(f"http://127.0.0.1:{port}/index.html"), 15,
                          interval=0.1, what=f"http on 127.0.0.1:{port}")
        assert Podman.INDEX_TEXT in text
        # The CLI sees the same storage.
        mine = [c for c in podman.containers() if c["Id"] == cid]
        assert len(mine) == 1 and mine[0]["State"] == "running", mine
    finally:
        t0 = time.monotonic()
        status, body = podman.api("DELETE", f"/containers/{cid}?force=true")
        assert status == 204, body
        assert time.monotonic() - t0 < 15
    assert not [c for c in podman.containers() if c["Id"] == cid]
    status, _ = podman.api("GET", f"/containers/{cid}/json")
    assert status == 404
    assert fetch(f"http://127.0.0.1:{port}/index.html") is None


def test_cli_runs_a_command(podman):
    out = podman.cli("run", "--rm", podman.image, "/bin/sh", "-c", "id -u; echo $PATH").stdout
    assert out.split() == ["0", "/bin"], out
