"""gpuhub-agent against gpuhubd: inventory from a fake GPU file, heartbeats, the online
rule, reconnects (agent stopped, replaced, server restarted) and token rotation.

Short heartbeats (HEARTBEAT on both sides) keep the module fast.
"""

import ctypes.util
import os
import re
import subprocess
import time

import pytest

from e2e_helpers import (GPUHUB_AGENT_BIN, GPUHUB_BIN, add_machine, agent_ws, free_port,
                         machine_info, wait_online, wait_until, write_fake_gpus, ws_auth,
                         ws_drain, ws_recv_until, ws_wait_closed)

HEARTBEAT = 0.5  # seconds, for the server and its agents

GPUS = [
    {"name": "Fake A100", "memory_total": 40960, "memory_used": 1024, "utilization": 37,
     "temperature": 45, "uuid": "GPU-e2e-0"},
    {"name": "Fake H100", "memory_total": 81559},
]


@pytest.fixture
def setup(server_factory, agent_factory, tmp_path):
    """A server with a short heartbeat on a port chosen now (so it can restart on it),
    one machine, and a fake GPU file. Returns a small namespace."""
    class Env:
        pass
    env = Env()
    env.srv = server_factory(config=f"heartbeat = {HEARTBEAT}\n", port=free_port())
    env.mid, env.token = add_machine(env.srv)
    env.gpus = tmp_path / "gpus.json"
    write_fake_gpus(env.gpus, GPUS)

    def agent(token=None, **kw):
        kw.setdefault("heartbeat", HEARTBEAT)
        kw.setdefault("fake_gpus", env.gpus)
        kw.setdefault("disk_path", str(tmp_path))
        return agent_factory(env.srv, token or env.token, **kw)
    env.agent = agent
    return env


def machine_event(mid, online):
    return lambda m: m == {"type": "machine", "data": {"id": mid, "online": online}}


def gpu_view(g: dict, index: int) -> dict:
    """What /api/machines/info should show for fake GPU entry `g`."""
    out = {"index": index, "name": g["name"], "memory_total": g["memory_total"],
           "memory_used": g.get("memory_used", 0), "utilization": g.get("utilization", 0),
           "temperature": g.get("temperature", 0), "task_id": None, "account": None}
    if "uuid" in g:
        out["uuid"] = g["uuid"]
    return out


def check_gpus(m: dict, gpus: list) -> None:
    assert len(m["gpu"]) == len(gpus), m["gpu"]
    for i, (got, want) in enumerate(zip(m["gpu"], gpus)):
        want = gpu_view(want, i)
        if "uuid" not in want:
            assert re.fullmatch(rf"GPU-fake-{i}-[0-9a-f]{{8}}", got["uuid"]), got
            want["uuid"] = got["uuid"]
        assert got == want


def online_with_gpus(env, timeout=15.0, pred=None):
    return wait_online(env.srv, env.mid, True, timeout=timeout,
                       pred=lambda m: m["gpu"] and (pred is None or pred(m)))


def test_agent_reports_fake_gpus(setup):
    env = setup
    browser = ws_auth(env.srv, env.srv.admin_token())
    try:
        agent = env.agent()
        agent.wait_connected()
        assert f"connected to 127.0.0.1:{env.srv.port} as machine {env.mid}" in agent.log_text()
        ws_recv_until(browser, machine_event(env.mid, True))
        m = online_with_gpus(env)
        check_gpus(m, GPUS)
        assert m["ip"] == "127.0.0.1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["last_seen"]), m
        # the default uuid is stable for the path
        uuid1 = m["gpu"][1]["uuid"]
        # CPU, memory (MiB) and disk (GiB) of this host
        assert m["cpu"]["cores"] == os.cpu_count(), m["cpu"]
        assert isinstance(m["cpu"]["name"], str) and m["cpu"]["name"]
        assert 0 <= m["cpu"]["usage"] <= 100
        meminfo = dict(l.split(":", 1) for l in open("/proc/meminfo").read().splitlines())
        total_mib = int(meminfo["MemTotal"].split()[0]) // 1024
        assert abs(m["memory"]["total"] - total_mib) <= 1, (m["memory"], total_mib)
        assert 0 < m["memory"]["used"] <= m["memory"]["total"]
        st = os.statvfs(env.gpus.parent)
        disk_gib = st.f_blocks * st.f_frsize >> 30
        assert abs(m["disk"]["total"] - disk_gib) <= 1, (m["disk"], disk_gib)
        assert 0 <= m["disk"]["used"] <= m["disk"]["total"]
        # SIGTERM: the agent stops cleanly and the machine is offline at once
        t0 = time.monotonic()
        agent.stop()
        wait_online(env.srv, env.mid, False, timeout=2)
        assert time.monotonic() - t0 < 1.5
        ws_recv_until(browser, machine_event(env.mid, False), timeout=2)
        assert "server link stopped" in agent.log_text()
        # a second run reports the same uuids
        env.agent()
        m = online_with_gpus(env)
        assert m["gpu"][1]["uuid"] == uuid1
    finally:
        browser.close()


def test_fake_gpu_file_changes(setup):
    env = setup
    agent = env.agent()
    online_with_gpus(env)
    # a change shows within a few heartbeats
    gpus = [dict(GPUS[0], memory_used=20480, utilization=99), GPUS[1]]
    t0 = time.monotonic()
    write_fake_gpus(env.gpus, gpus)
    m = online_with_gpus(env, timeout=4 * HEARTBEAT + 2,
                         pred=lambda m: m["gpu"][0]["memory_used"] == 20480)
    assert time.monotonic() - t0 < 3 * HEARTBEAT + 1.0
    check_gpus(m, gpus)
    # a GPU appears
    gpus = gpus + [{"name": "Fake T4", "memory_total": 15360, "memory_used": 1,
                    "uuid": "GPU-e2e-2"}]
    write_fake_gpus(env.gpus, gpus)
    m = online_with_gpus(env, timeout=4 * HEARTBEAT + 2, pred=lambda m: len(m["gpu"]) == 3)
    check_gpus(m, gpus)
    # an invalid file: the last good GPUs stay, the agent says why once, stays connected
    for bad in ('[{"name": "x"', '[{"name": "x", "memory_total": 10, "memory_used": 11}]'):
        before = agent.count(str(env.gpus))
        env.gpus.write_text(bad)
        wait_until(lambda: agent.count(str(env.gpus)) > before, 4 * HEARTBEAT + 2,
                   what="the agent to log the invalid GPU file")
        time.sleep(2 * HEARTBEAT)
        assert agent.count(str(env.gpus)) == before + 1, agent.log_text()
        m = machine_info(env.srv, env.mid)
        assert m["online"] is True
        check_gpus(m, gpus)
    # a missing file is the same
    env.gpus.unlink()
    time.sleep(2 * HEARTBEAT)
    assert machine_info(env.srv, env.mid)["online"] is True
    # fixed again: the new list
    gpus = [GPUS[1]]
    write_fake_gpus(env.gpus, gpus)
    m = online_with_gpus(env, timeout=4 * HEARTBEAT + 2, pred=lambda m: len(m["gpu"]) == 1)
    check_gpus(m, gpus)
    assert agent.count("connected to") == 1, "the agent reconnected while the file changed"


def test_agent_killed_offline_at_once(setup):
    env = setup
    browser = ws_auth(env.srv, env.srv.admin_token())
    try:
        agent = env.agent()
        online_with_gpus(env)
        ws_recv_until(browser, machine_event(env.mid, True))
        t0 = time.monotonic()
        agent.kill9()
        wait_online(env.srv, env.mid, False, timeout=3 * HEARTBEAT + 2, pred=None)
        took = time.monotonic() - t0
        # a closed connection is offline at once, not after 3 missed heartbeats
        assert took < 2 * HEARTBEAT, f"offline {took:.2f}s after the agent was killed"
        ws_recv_until(browser, machine_event(env.mid, False), timeout=1)
        m = machine_info(env.srv, env.mid)
        check_gpus(m, GPUS)  # the last report stays visible
    finally:
        browser.close()


def test_agent_stopped_goes_offline_then_back(setup):
    env = setup
    agent = env.agent()
    online_with_gpus(env)
    time.sleep(HEARTBEAT)  # a heartbeat has been sent
    agent.sigstop()
    t0 = time.monotonic()
    try:
        # the connection stays open: still online for 2 intervals
        time.sleep(2 * HEARTBEAT - 0.2)
        assert machine_info(env.srv, env.mid)["online"] is True, \
            "offline before 3 heartbeats were missed"
        wait_online(env.srv, env.mid, False, timeout=3 * HEARTBEAT + 2)
        took = time.monotonic() - t0
        assert took <= 3 * HEARTBEAT + 1.0, took
    finally:
        agent.sigcont()
    # the server closed the stale connection: the agent reconnects by itself
    t1 = time.monotonic()
    online_with_gpus(env, timeout=10)
    agent.wait_connected(count=2, timeout=5)
    assert time.monotonic() - t1 < 5
    assert "server link down" in agent.log_text()
    # and stays online
    time.sleep(3 * HEARTBEAT)
    assert machine_info(env.srv, env.mid)["online"] is True


def test_second_agent_replaces_first(setup):
    env = setup
    browser = ws_auth(env.srv, env.srv.admin_token())
    try:
        first = env.agent()
        first.wait_connected()
        online_with_gpus(env)
        ws_recv_until(browser, machine_event(env.mid, True))
        second = env.agent(token_file=False)  # --token this time
        second.wait_connected()
        # the first one is disconnected
        first.wait_log("server link down", timeout=5)
        # the machine stays online throughout: no offline event, online in info
        deadline = time.monotonic() + 4 * HEARTBEAT
        while time.monotonic() < deadline:
            assert machine_info(env.srv, env.mid)["online"] is True
            time.sleep(0.1)
        events = ws_drain(browser, 0.3)
        assert not [e for e in events if e == {"type": "machine",
                                               "data": {"id": env.mid, "online": False}}], events
    finally:
        browser.close()


def test_server_restart_agent_reconnects(setup):
    env = setup
    agent = env.agent()
    online_with_gpus(env)
    took = env.srv.stop()  # SIGTERM, exit code 0
    assert took < 5, f"gpuhubd took {took:.1f}s to stop with an agent connected"
    agent.wait_log("server link down", timeout=5)
    env.srv.start()  # same data dir, same port
    assert env.srv.port == env.srv.listen_port
    m = online_with_gpus(env, timeout=20)
    check_gpus(m, GPUS)
    assert m["ip"] == "127.0.0.1"
    assert agent.count("connected to") >= 2
    assert agent.running()


def test_rotate_token_kicks_agent(setup):
    env = setup
    browser = ws_auth(env.srv, env.srv.admin_token())
    try:
        agent = env.agent()
        online_with_gpus(env)
        ws_recv_until(browser, machine_event(env.mid, True))
        r = env.srv.post(f"/api/admin/machines/{env.mid}/token", env.srv.admin_token())
        assert r.status_code == 200, r.text
        new = r.json()["agent_token"]
        ws_recv_until(browser, machine_event(env.mid, False), timeout=2)
        assert machine_info(env.srv, env.mid)["online"] is False
        # the kicked agent's reconnect is refused
        agent.wait_log("Invalid agent token", timeout=5)
        time.sleep(3 * HEARTBEAT)
        assert machine_info(env.srv, env.mid)["online"] is False
        assert agent.running()  # it keeps trying, with backoff
        # the new token works
        env.agent(token=new)
        online_with_gpus(env)
        ws_recv_until(browser, machine_event(env.mid, True), timeout=2)
    finally:
        browser.close()


def test_deleted_machine_agent_refused(setup):
    env = setup
    agent = env.agent()
    online_with_gpus(env)
    r = env.srv.request("DELETE", f"/api/admin/machines/{env.mid}", env.srv.admin_token())
    assert r.status_code == 200, r.text
    agent.wait_log("Invalid agent token", timeout=5)
    assert machine_info(env.srv, env.mid) is None


def test_agent_without_gpus(setup):
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("NVML is installed here")
    env = setup
    agent = env.agent(fake_gpus=None)
    agent.wait_connected()
    m = wait_online(env.srv, env.mid, True, timeout=10, pred=lambda m: m["cpu"] is not None)
    assert m["gpu"] == []
    assert m["memory"]["total"] > 0 and m["disk"]["total"] >= 0
    time.sleep(4 * HEARTBEAT)  # several heartbeats
    assert machine_info(env.srv, env.mid)["online"] is True
    text = agent.log_text()
    assert text.count("no NVIDIA GPUs will be reported") == 1, text
    assert "nvidia-ml" in text.lower() or "nvml" in text.lower(), text


def test_agent_follows_server_heartbeat(setup):
    """The server tells the agent its interval in the auth reply; an agent started without
    --heartbeat must keep the machine online on a server with a shorter interval."""
    env = setup
    agent = env.agent(heartbeat=None)
    agent.wait_connected()
    first = online_with_gpus(env)["last_seen"]
    time.sleep(6 * HEARTBEAT)
    m = machine_info(env.srv, env.mid)
    assert m["online"] is True, \
        "an agent with the default interval drops off a server with a shorter one"
    assert agent.count("connected to") == 1
    # heartbeats move last_seen on (second resolution)
    assert m["last_seen"] > first, (first, m["last_seen"])


def test_bad_token_agent_keeps_trying(setup):
    env = setup
    agent = env.agent(token="gpuhub-agent-" + "0" * 64)
    agent.wait_log("server refused the agent: Invalid agent token", timeout=5)
    assert agent.running()
    assert machine_info(env.srv, env.mid)["online"] is False


@pytest.mark.parametrize("args", [
    [],                                                      # no token
    ["--token-file", "/nonexistent/gpuhub-token"],
    ["--token", "t", "--server", "http://127.0.0.1:1"],
    ["--token", "t", "--server", "ws://127.0.0.1:99999"],
    ["--token", "t", "--heartbeat", "0"],
    ["--token", "t", "--frobnicate"],
])
def test_agent_usage_errors(args):
    if not GPUHUB_AGENT_BIN.exists():
        pytest.skip("gpuhub-agent not built")
    p = subprocess.run([str(GPUHUB_AGENT_BIN), *args], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "no message on stderr"
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr


def test_cli_token_agent_started_before_server(server_factory, agent_factory, tmp_path):
    """`gpuhubd machine add` on a stopped server's data dir; the agent starts first, keeps
    retrying, and connects once the server is up."""
    srv = server_factory(config=f"heartbeat = {HEARTBEAT}\n", port=free_port(), start=False)
    p = subprocess.run([str(GPUHUB_BIN), "machine", "add", "early-1", "--data", str(srv.data_dir)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    token = p.stdout.splitlines()[-1]
    gpus = tmp_path / "gpus.json"
    write_fake_gpus(gpus, GPUS)
    agent = agent_factory(srv.listen_port, token, heartbeat=HEARTBEAT, fake_gpus=gpus)
    agent.wait_log("cannot connect", timeout=10)
    srv.start()
    m = wait_online(srv, "early-1", True, timeout=15, pred=lambda m: m["gpu"])
    check_gpus(m, GPUS)
    assert m["ip"] == "127.0.0.1"


def test_three_agents_join_leave_and_survive_a_server_restart(server_factory, agent_factory,
                                                                tmp_path):
    """The issue's story end to end: three agents with different fake GPU files join and
    machines/info shows all three exactly; one is killed and goes offline within 3
    intervals, then comes back; the server restarts and all three come back on their
    own; a browser sees every online/offline event."""
    srv = server_factory(config=f"heartbeat = {HEARTBEAT}\n", port=free_port())
    fleets = {
        "node-a": [{"name": "Fake A100", "memory_total": 40960, "memory_used": 10}],
        "node-b": [{"name": "Fake H100", "memory_total": 81559, "utilization": 90},
                   {"name": "Fake H100", "memory_total": 81559, "temperature": 70}],
        "node-c": [{"name": "Fake L4", "memory_total": 23034}] * 3,
    }
    browser = ws_auth(srv, srv.admin_token())
    agents = {}
    try:
        for mid, gpus in fleets.items():
            token = add_machine(srv, mid)[1]
            path = tmp_path / f"{mid}.json"
            write_fake_gpus(path, gpus)
            agents[mid] = agent_factory(srv, token, heartbeat=HEARTBEAT, fake_gpus=path,
                                        disk_path=str(tmp_path))
        for mid, gpus in fleets.items():
            m = wait_online(srv, mid, True, timeout=15, pred=lambda m: bool(m["gpu"]))
            check_gpus(m, gpus)
        # the events come in the order the agents connected
        announced = set()
        while announced != set(fleets):
            e = ws_recv_until(browser, lambda m: m["type"] == "machine" and m["data"]["online"])
            announced.add(e["data"]["id"])
        info = srv.get("/api/machines/info", srv.admin_token()).json()
        assert [m["id"] for m in info] == sorted(fleets)
        assert all(m["online"] for m in info)

        agents["node-b"].kill9()
        t0 = time.monotonic()
        wait_online(srv, "node-b", False, timeout=3 * HEARTBEAT + 1)
        assert time.monotonic() - t0 <= 3 * HEARTBEAT + 1
        ws_recv_until(browser, machine_event("node-b", False))
        assert machine_info(srv, "node-a")["online"] and machine_info(srv, "node-c")["online"]
        agents["node-b"].start()
        check_gpus(wait_online(srv, "node-b", True, timeout=15,
                               pred=lambda m: bool(m["gpu"])), fleets["node-b"])
        ws_recv_until(browser, machine_event("node-b", True))
    finally:
        browser.close()

    srv.stop()
    srv.start()
    for mid, gpus in fleets.items():
        check_gpus(wait_online(srv, mid, True, timeout=20, pred=lambda m: bool(m["gpu"])), gpus)
    assert all(a.running() for a in agents.values())


def test_wrong_token_and_old_protocol_are_refused(server_factory):
    srv = server_factory()
    _, token = add_machine(srv)
    for version, token_used, message in [
            ("1", "gpuhub-agent-" + "0" * 64, "Invalid agent token"),
            ("0", token, "Incompatible agent protocol version 0")]:
        ws, reply = agent_ws(srv, token_used, version=version)
        try:
            assert reply["type"] == "error" and reply["data"]["message"].startswith(message), reply
            assert ws_wait_closed(ws)
        finally:
            ws.close()
