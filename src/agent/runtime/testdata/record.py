#!/usr/bin/env python3
"""Records raw Docker Engine API responses from a Podman (or Docker) socket.

Usage: record.py SOCKET OUTDIR
Sends the requests DockerClient sends (same headers) and saves each response's raw bytes (status
line, headers, body) as OUTDIR/<name>.http. Needs a local image localhost/gpuhub-test:latest with
busybox; creates containers named gpuhub-rec-* and removes them at the end.
"""
import json
import os
import socket
import sys
import time

SOCK, OUT = sys.argv[1], sys.argv[2]
IMAGE = "localhost/gpuhub-test:latest"


def raw(method, target, body=None, idle=1.5):
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} /v1.41{target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: gpuhub-agent\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    if body is not None or method in ("POST", "PUT"):
        head += f"Content-Length: {len(data)}\r\n"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(head.encode() + b"\r\n" + data)
    s.settimeout(idle)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break  # EOF
            got += chunk
    except socket.timeout:
        pass  # keep-alive: the server waits for the next request
    s.close()
    return got


def save(name, method, target, body=None, **kw):
    got = raw(method, target, body, **kw)
    with open(os.path.join(OUT, name + ".http"), "wb") as f:
        f.write(got)
    status = got.split(b"\r\n", 1)[0].decode()
    print(f"{name}: {status} ({len(got)} bytes)")
    return got


def body_json(got):
    head, _, body = got.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out += rest[:n]
            body = rest[n + 2:]
        body = out
    return json.loads(body)


create = {"Image": IMAGE, "Cmd": ["sleep", "600"], "Labels": {"gpuhub": "1", "gpuhub.user": "alice"},
          "ExposedPorts": {"80/tcp": {}},
          "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "18080"}]}}}
save("version", "GET", "/version")
got = save("create", "POST", "/containers/create?name=gpuhub-rec-a", create)
cid = body_json(got)["Id"]
save("create_conflict", "POST", "/containers/create?name=gpuhub-rec-a", create)
save("create_bad_image", "POST", "/containers/create?name=gpuhub-rec-b",
     {"Image": "localhost/nope:latest", "Cmd": ["true"]})
save("start", "POST", f"/containers/{cid}/start")
save("start_again", "POST", f"/containers/{cid}/start")
save("inspect", "GET", f"/containers/{cid}/json")
save("remove_running", "DELETE", f"/containers/{cid}?force=false")
save("create_invalid", "POST", "/containers/create?name=gpuhub-rec-c", {"Image": 5})
save("inspect_unknown", "GET", "/containers/gpuhub-rec-missing/json")
filters = json.dumps({"label": ["gpuhub.user=alice"]})
from urllib.parse import quote
save("list", "GET", "/containers/json?all=1&filters=" + quote(filters, safe=""))
save("list_empty", "GET", "/containers/json?all=1&filters=" +
     quote(json.dumps({"label": ["gpuhub.user=nobody"]}), safe=""))
got = save("exec_create", "POST", f"/containers/{cid}/exec",
           {"AttachStdout": True, "AttachStderr": True, "Tty": False,
            "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"], "Env": ["A=1"]})
eid = body_json(got)["Id"]
save("exec_start", "POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False}, idle=10)
time.sleep(0.5)
save("exec_inspect", "GET", f"/exec/{eid}/json")
save("exec_inspect_unknown", "GET", "/exec/0000000000000000/json")
save("exec_start_unknown", "POST", "/exec/0000000000000000/start", {"Detach": False, "Tty": False})
save("restart", "POST", f"/containers/{cid}/restart?t=1", idle=5)
save("stop", "POST", f"/containers/{cid}/stop?t=1", idle=5)
save("stop_again", "POST", f"/containers/{cid}/stop?t=1")
save("exec_create_stopped", "POST", f"/containers/{cid}/exec",
     {"AttachStdout": True, "AttachStderr": True, "Tty": False, "Cmd": ["true"]})
save("inspect_exited", "GET", f"/containers/{cid}/json")
save("remove", "DELETE", f"/containers/{cid}?force=true")

# Several published ports, one container port on two host ports, and a UDP port.
ports = {"Image": IMAGE, "Cmd": ["sleep", "600"], "Labels": {"gpuhub.user": "bob"},
         "ExposedPorts": {"80/tcp": {}, "8080/tcp": {}, "53/udp": {}},
         "HostConfig": {"PortBindings": {
             "80/tcp": [{"HostPort": "18081"}, {"HostIp": "127.0.0.1", "HostPort": "18083"}],
             "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18082"}],
             "53/udp": [{"HostPort": "18053"}]}}}
got = raw("POST", "/containers/create?name=gpuhub-rec-ports", ports)
pid = body_json(got)["Id"]
raw("POST", f"/containers/{pid}/start")
save("list_ports", "GET", "/containers/json?all=1&filters=" +
     quote(json.dumps({"label": ["gpuhub.user=bob"]}), safe=""))
save("inspect_ports", "GET", f"/containers/{pid}/json")
got = raw("POST", f"/containers/{pid}/exec",
          {"AttachStdout": True, "AttachStderr": True, "Tty": False,
           "Cmd": ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo done >&2"]})
eid = body_json(got)["Id"]
save("exec_start_big", "POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False}, idle=10)
got = raw("POST", f"/containers/{pid}/exec",
          {"AttachStdout": True, "AttachStderr": True, "Tty": False,
           "Cmd": ["sh", "-c", "sleep 2"]})
eid = body_json(got)["Id"]
import threading
t = threading.Thread(target=raw, args=("POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False}),
                     kwargs={"idle": 5})
t.start()
time.sleep(1)
save("exec_inspect_running", "GET", f"/exec/{eid}/json")
t.join()
raw("DELETE", f"/containers/{pid}?force=true", idle=10)
save("remove_unknown", "DELETE", "/containers/gpuhub-rec-missing?force=false")
save("image_exists", "GET", "/images/" + quote(IMAGE, safe="") + "/json")
save("image_missing", "GET", "/images/" + quote("localhost/nope:latest", safe="") + "/json")
save("pull_fail", "POST", "/images/create?fromImage=" + quote("quay.io/gpuhub/none", safe="") +
     "&tag=latest", idle=60)
