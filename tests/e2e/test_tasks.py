"""GPU leases (contract section 7) end to end: gpuhubd, a gpuhub-agent with fake
GPUs and --docker-host, and the private Podman service running the users'
containers in which the leased commands run."""

from __future__ import annotations

import random
import time

import pytest

from e2e_helpers import (add_machine, assert_error, machine_info, unique, wait_online,
                         wait_until, write_fake_gpus, ws_connect, ws_recv, ws_recv_until,
                         ws_send)

CONFIG = """
[tasks]
kill_grace = "2s"
lost_grace = "4s"
max_duration = "72h"
"""

FINAL = {"completed", "failed", "cancelled", "expired", "lost"}


class Lab:
    """A server with one 4-GPU machine whose agent runs leases in Podman containers."""

    def __init__(self, server_factory, agent_factory, podman, tmp_path):
        self.srv = server_factory(config=CONFIG)
        self.podman = podman
        self.admin = self.srv.admin_token()
        self.machine, token = add_machine(self.srv)
        self.gpu_file = tmp_path / "gpus.json"
        write_fake_gpus(self.gpu_file, [{"name": "Sim GPU", "memory_total": 1024}] * 4)
        base = random.randrange(40000, 49000, 100)
        self.agent_args = dict(
            heartbeat=0.3, fake_gpus=self.gpu_file,
            extra_args=["--docker-host", podman.docker_host, "--port-range",
                        f"{base}-{base + 99}", "--state-dir", str(tmp_path / "agent-state")])
        self.agent = agent_factory(self.srv, token, **self.agent_args)
        wait_online(self.srv, self.machine)
        wait_until(lambda: len(machine_info(self.srv, self.machine)["gpu"]) == 4, 10,
                   what="4 GPUs reported")
        img = self.srv.post("/api/admin/images", self.admin,
                            json={"name": "busybox", "image": podman.image})
        assert img.status_code == 200, img.text
        self.image_id = img.json()["id"]
        self.alice = self.srv.create_user(unique("alice"))
        self.bob = self.srv.create_user(unique("bob"))
        for who in (self.alice, self.bob):
            r = self.srv.post("/api/containers", who[2], timeout=90,
                              json={"machine_id": self.machine, "image_id": self.image_id,
                                    "name": "dev"})
            assert r.status_code == 200, r.text

    def submit(self, who=None, method="POST", **body):
        who = who or self.alice
        req = {"machine_id": self.machine, "containername": "dev", "command": "true",
               "duration": "30s", "gpu_count": 1}
        if body.get("gpus") is not None and "gpu_count" not in body:
            del req["gpu_count"]
        req.update(body)
        for k in [k for k, v in req.items() if v is None]:
            del req[k]
        return self.srv.request(method, "/api/task/request", who[2], json=req)

    def ok(self, who=None, **body) -> dict:
        r = self.submit(who, **body)
        assert r.status_code == 200, r.text
        return r.json()

    def task(self, task_id: int) -> dict:
        r = self.srv.get(f"/api/task/machine/{self.machine}?status=all", self.admin)
        assert r.status_code == 200, r.text
        found = [t for t in r.json() if t["taskId"] == task_id]
        assert found, f"task {task_id} not listed"
        return found[0]

    def wait(self, task_id: int, statuses, timeout: float = 30.0) -> dict:
        if isinstance(statuses, str):
            statuses = {statuses}
        last = {}

        def check():
            nonlocal last
            last = self.task(task_id)
            return last["status"] in statuses
        try:
            wait_until(check, timeout, interval=0.1, what=f"task {task_id} in {statuses}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last: {last}\nagent log:\n"
                                 f"{self.agent.log_text()[-3000:]}") from None
        return last

    def log(self, task_id: int, who=None) -> str:
        r = self.srv.get(f"/api/task/{task_id}/log", (who or self.alice)[2])
        assert r.status_code == 200, r.text
        return r.text

    def cancel(self, task_id: int, who=None, key="task_id"):
        return self.srv.post("/api/task/cancel", (who or self.alice)[2],
                             json={key: task_id, "machine_id": self.machine})

    def processes(self, marker: str) -> list[str]:
        """Processes in alice's container whose command line holds `marker`."""
        r = self.podman.cli("exec", f"gpuhub-{self.alice[0]}-dev", "ps", "-o", "pid,args",
                            check=False)
        return [line for line in r.stdout.splitlines() if marker in line and "ps -o" not in line]


@pytest.fixture
def lab(server_factory, agent_factory, podman, tmp_path) -> Lab:
    return Lab(server_factory, agent_factory, podman, tmp_path)


def test_a_lease_runs_completes_and_keeps_its_output(lab):
    r = lab.ok(command="echo out; echo err >&2; echo gpus=$CUDA_VISIBLE_DEVICES "
                       "nv=$NVIDIA_VISIBLE_DEVICES", gpu_count=2)
    assert r["status"] == "running" and r["gpu_ids"] == [0, 1]
    assert r["start_time"] and r["estimated_start"] is None
    t = lab.wait(r["taskId"], "completed")
    assert t["exit_code"] == 0 and t["end_time"]
    assert t["account"] == lab.alice[0] and t["containername"] == "dev"
    assert t["gpu_count"] == 2 and t["gpu_ids"] == [0, 1]
    assert abs(t["duration"] - 30 / 3600) < 1e-9
    wait_until(lambda: "gpus=0,1 nv=0,1" in lab.log(r["taskId"]), 10, what="output logged")
    text = lab.log(r["taskId"])
    assert "out\n" in text and "err\n" in text


def test_a_failing_command_reports_its_exit_code(lab):
    r = lab.ok(command="echo bye; exit 3")
    t = lab.wait(r["taskId"], "failed")
    assert t["exit_code"] == 3


def test_a_lease_expires_and_its_processes_are_gone(lab):
    r = lab.ok(command="sleep 600; echo expire-me", duration="2s")
    lab.wait(r["taskId"], "running")
    wait_until(lambda: lab.processes("expire-me"), 10, what="command running")
    t = lab.wait(r["taskId"], "expired", timeout=20)
    start = time.strptime(t["start_time"], "%Y-%m-%dT%H:%M:%SZ")
    end = time.strptime(t["end_time"], "%Y-%m-%dT%H:%M:%SZ")
    assert 1 <= time.mktime(end) - time.mktime(start) <= 6
    wait_until(lambda: not lab.processes("expire-me"), 10, what="processes gone")


def test_a_process_that_ignores_sigterm_is_killed(lab):
    r = lab.ok(command="trap '' TERM; sleep 600; echo stubborn", duration="2s")
    lab.wait(r["taskId"], "expired", timeout=20)
    wait_until(lambda: not lab.processes("stubborn"), 15, what="SIGKILL after the grace")


def test_cancel_running_and_queued(lab):
    running = lab.ok(command="sleep 600; echo cancel-running", gpu_count=4, duration="10m")
    assert running["status"] == "running"
    queued = lab.ok(command="true", gpu_count=4)
    assert queued["status"] == "queued" and queued["estimated_start"]
    r = lab.cancel(queued["taskId"], key="taskId")
    assert r.status_code == 200 and r.json() == {"taskId": queued["taskId"], "status": "cancelled"}
    assert lab.task(queued["taskId"])["status"] == "cancelled"
    assert_error(lab.cancel(running["taskId"], who=lab.bob), 403, "Permission denied")
    r = lab.cancel(running["taskId"])
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    wait_until(lambda: not lab.processes("cancel-running"), 15, what="cancelled process gone")
    assert_error(lab.cancel(running["taskId"]), 409, "Task already finished")
    assert_error(lab.srv.post("/api/task/cancel", lab.alice[2],
                              json={"task_id": running["taskId"], "machine_id": "nope"}),
                 404, "Task not found")
    assert_error(lab.cancel(999999), 404, "Task not found")


def test_a_queued_lease_starts_when_an_earlier_one_ends(lab):
    first = lab.ok(command="sleep 2", gpu_count=4)
    second = lab.ok(command="echo second", gpu_count=1, who=lab.bob)
    assert second["status"] == "queued"
    lab.wait(first["taskId"], "completed", timeout=20)
    t = lab.wait(second["taskId"], "completed", timeout=20)
    assert t["start_time"] >= lab.task(first["taskId"])["end_time"]


def test_explicit_gpus_wait_for_exactly_those(lab):
    hold = lab.ok(command="sleep 3", gpus=[2])
    assert hold["gpu_ids"] == [2]
    want = lab.ok(command="echo $CUDA_VISIBLE_DEVICES", gpus=[2, 3])
    assert want["status"] == "queued"
    other = lab.ok(command="true", gpu_count=1)
    assert other["status"] == "running" and other["gpu_ids"] == [0], "backfill on free GPUs"
    t = lab.wait(want["taskId"], "completed", timeout=25)
    assert t["gpu_ids"] == [2, 3]
    wait_until(lambda: "2,3" in lab.log(want["taskId"]), 10, what="log")


def test_gpus_show_their_lease_in_machines_info(lab):
    r = lab.ok(command="sleep 600", gpus=[1], duration="10m")
    lab.wait(r["taskId"], "running")
    gpus = machine_info(lab.srv, lab.machine)["gpu"]
    assert gpus[1]["task_id"] == r["taskId"] and gpus[1]["account"] == lab.alice[0]
    assert gpus[0]["task_id"] is None and gpus[0]["account"] is None
    assert lab.cancel(r["taskId"]).status_code == 200
    wait_until(lambda: machine_info(lab.srv, lab.machine)["gpu"][1]["task_id"] is None, 15,
               what="GPU free again")


def test_task_events_reach_the_owners_websocket(lab):
    ws = ws_connect(lab.srv)
    try:
        ws_send(ws, "auth", {"token": lab.alice[2]})
        ws_recv(ws)
        r = lab.ok(command="true")
        seen = ws_recv_until(ws, lambda m: m["type"] == "task"
                             and m["data"]["taskId"] == r["taskId"]
                             and m["data"]["status"] == "completed", timeout=20)
        assert seen["data"]["exit_code"] == 0
    finally:
        ws.close()


def test_subscribed_browsers_see_another_users_lease_take_and_free_a_gpu(lab):
    ws = ws_connect(lab.srv)
    try:
        ws_send(ws, "auth", {"token": lab.bob[2]})
        ws_recv(ws)
        ws_send(ws, "subscribe", {"machines": "yes"})
        assert ws_recv(ws) == {"type": "error",
                               "data": {"message": 'subscribe needs {"machines": true|false}'}}
        ws_send(ws, "subscribe", {"machines": True})
        assert ws_recv(ws) == {"type": "subscribe", "data": {"machines": True}}
        r = lab.ok(command="sleep 30", gpus=[2])

        def holder(m, task_id):
            return (m["type"] == "machine_info" and m["data"]["id"] == lab.machine
                    and m["data"]["gpu"][2]["task_id"] == task_id)
        taken = ws_recv_until(ws, lambda m: holder(m, r["taskId"]), timeout=20)
        assert taken["data"]["gpu"][2]["account"] == lab.alice[0]
        assert taken["data"]["online"] is True
        assert set(taken["data"]) == set(machine_info(lab.srv, lab.machine))
        assert lab.cancel(r["taskId"]).status_code == 200
        ws_recv_until(ws, lambda m: holder(m, None), timeout=20)
        # Off again: no more machine_info.
        ws_send(ws, "subscribe", {"machines": False})
        ws_recv_until(ws, lambda m: m["type"] == "subscribe", timeout=5)
        lab.ok(command="true", gpus=[3])
        with pytest.raises(AssertionError, match="WebSocket message within"):
            ws_recv_until(ws, lambda m: m["type"] == "machine_info", timeout=2)
    finally:
        ws.close()


def test_lists_are_newest_first_and_visible_to_everyone(lab):
    a = lab.ok(command="true")
    b = lab.ok(command="true", who=lab.bob)
    lab.wait(b["taskId"], "completed")
    mine = lab.srv.get(f"/api/task/user/{lab.alice[0]}", lab.bob[2])
    assert mine.status_code == 200
    ids = [t["taskId"] for t in mine.json()]
    assert a["taskId"] in ids and b["taskId"] not in ids
    machine = lab.srv.get(f"/api/task/machine/{lab.machine}", lab.bob[2]).json()
    ids = [t["taskId"] for t in machine]
    assert ids == sorted(ids, reverse=True) and {a["taskId"], b["taskId"]} <= set(ids)
    assert set(machine[0]) == {"taskId", "user_id", "account", "machine_id", "containername",
                               "command", "duration", "gpu_count", "gpu_ids", "status",
                               "submit_time", "start_time", "end_time", "exit_code",
                               "estimated_start"}
    assert_error(lab.srv.get(f"/api/task/{a['taskId']}/log", lab.bob[2]), 403,
                 "Permission denied")
    assert lab.srv.get(f"/api/task/{a['taskId']}/log", lab.admin).status_code == 200
    assert_error(lab.srv.get("/api/task/999999/log", lab.admin), 404, "Task not found")


def test_put_is_accepted_too(lab):
    r = lab.submit(method="PUT", command="true", duration=0.01)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body,status,message", [
    ({"machine_id": "no-such-machine"}, 404, "Machine not found"),
    ({"containername": "nope"}, 404, "Container not found"),
    ({"duration": 0}, 400, "duration must be greater than 0"),
    ({"duration": -1}, 400, "duration must be greater than 0"),
    ({"duration": "0s"}, 400, "duration must be greater than 0"),
    ({"duration": "soon"}, 400,
     'duration must be a number of hours or a string like "90m", "1h30m", "2d"'),
    ({"duration": 73}, 400, "duration must be at most 72h"),
    ({"duration": "4d"}, 400, "duration must be at most 72h"),
    ({"duration": None}, 400, "Missing field: duration"),
    ({"gpu_count": 5}, 400, None),
    ({"gpu_count": 0}, 400, "Field gpu_count must be a positive integer"),
    ({"gpu_count": None}, 400, "Exactly one of gpu_count and gpus is required"),
    ({"gpus": [0], "gpu_count": 1}, 400, "Exactly one of gpu_count and gpus is required"),
    ({"gpu_count": None, "gpus": []}, 400, "Field gpus must be a non-empty array of GPU indices"),
    ({"gpu_count": None, "gpus": [0, 0]}, 400, "Field gpus must not repeat a GPU: 0"),
    ({"gpu_count": None, "gpus": [7]}, 400, None),
    ({"gpu_count": None, "gpus": [-1]}, 400, "Field gpus must be a non-empty array of GPU indices"),
    ({"command": ""}, 400, "command must not be empty"),
    ({"command": None}, 400, "Missing field: command"),
    ({"extra": 1}, 400, "Unknown field: extra"),
])
def test_invalid_requests_are_refused_and_change_nothing(lab, body, status, message):
    before = lab.srv.db_snapshot()
    r = lab.submit(**body)
    assert_error(r, status, message)
    assert lab.srv.db_snapshot() == before


def test_another_users_container_is_not_found(lab):
    lab.srv.request("DELETE", f"/api/containers/"
                    f"{[c for c in lab.srv.get('/api/containers', lab.bob[2]).json()][0]['id']}",
                    lab.bob[2], timeout=90)
    assert_error(lab.submit(who=lab.bob), 404, "Container not found")


def test_server_kill9_loses_nothing(lab):
    running = lab.ok(command="sleep 5", gpu_count=4, duration="1m")
    queued = [lab.ok(command=f"echo q{i}", gpu_count=2) for i in range(3)]
    assert all(q["status"] == "queued" for q in queued)
    port = lab.srv.port
    lab.srv.kill9()
    lab.srv.listen_port = port
    lab.srv.start()
    wait_online(lab.srv, lab.machine, timeout=30)
    assert lab.task(running["taskId"])["status"] in {"running", "completed"}
    for q in queued:
        t = lab.wait(q["taskId"], "completed", timeout=40)
        assert t["exit_code"] == 0
    lab.wait(running["taskId"], "completed", timeout=30)
    every = lab.srv.get(f"/api/task/machine/{lab.machine}?status=all", lab.admin).json()
    assert sorted(t["taskId"] for t in every) == sorted(
        [running["taskId"]] + [q["taskId"] for q in queued])
    # No GPU was leased twice: the three 2-GPU leases never overlapped the 4-GPU one.
    first_end = lab.task(running["taskId"])["end_time"]
    assert all(lab.task(q["taskId"])["start_time"] >= first_end for q in queued)


def test_agent_kill9_the_lease_still_ends_on_time(lab, agent_factory):
    r = lab.ok(command="sleep 600; echo agent-dies", duration="6s")
    lab.wait(r["taskId"], "running")
    wait_until(lambda: lab.processes("agent-dies"), 10, what="command running")
    lab.agent.kill9()
    time.sleep(1)
    assert lab.processes("agent-dies"), "the command outlives its agent"
    lab.agent.start()
    wait_online(lab.srv, lab.machine)
    t = lab.wait(r["taskId"], "expired", timeout=25)
    wait_until(lambda: not lab.processes("agent-dies"), 10, what="processes gone")
    assert t["end_time"]
