"""The gpuhub command-line client end to end: the real `gpuhub` binary against a
real gpuhubd with a gpuhub-agent (fake GPUs) running containers on Podman.
Every invocation gets its own HOME and XDG_CONFIG_HOME (tests never touch the
real ~/.config); the binary comes from GPUHUB_CLI_BIN."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import random
import re
import stat
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from e2e_helpers import (ADMIN_PASSWORD, GPUHUB_CLI_BIN, USER_PASSWORD, add_machine, free_port,
                         machine_info, unique, wait_online, wait_until, write_fake_gpus)

CONFIG = """
[tasks]
kill_grace = "2s"
lost_grace = "4s"
"""


class Cli:
    """Runs `gpuhub` as one user: its own config dir, never a terminal."""

    def __init__(self, home: Path, env: dict | None = None):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("GPUHUB_") and k not in ("NO_COLOR",)}
        self.env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "xdg"))
        self.env.update(env or {})

    @property
    def config_path(self) -> Path:
        return self.home / "xdg" / "gpuhub" / "config.json"

    def __call__(self, *args, input: str | None = None, env: dict | None = None,
                 timeout: float = 90) -> subprocess.CompletedProcess:
        if not GPUHUB_CLI_BIN.exists():
            pytest.fail(f"gpuhub binary not found at {GPUHUB_CLI_BIN} (set GPUHUB_CLI_BIN)")
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run([str(GPUHUB_CLI_BIN), *map(str, args)], input=input, env=e,
                           capture_output=True, text=True, timeout=timeout)
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert marker not in p.stderr, p.stderr
        return p

    def ok(self, *args, **kw) -> str:
        p = self(*args, **kw)
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p.stdout

    def json(self, *args, **kw):
        return json.loads(self.ok(*args, "--json", **kw))

    def fails(self, code: int, *args, contains: str | None = None, **kw) -> str:
        p = self(*args, **kw)
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        if contains is not None:
            assert contains in p.stderr, (contains, p.stderr)
        # One clear line, not a dump.
        assert p.stderr.strip().count("\n") == 0 or code == 2, p.stderr
        return p.stderr

    def login(self, url: str, account: str, password: str) -> str:
        return self.ok("login", "--server", url, account, "--password-stdin", input=password + "\n")


class Cluster:
    def __init__(self, factory, agent_factory, podman, tmp: Path):
        self.srv = factory(config=CONFIG)
        self.podman = podman
        self.admin_token = self.srv.admin_token()
        self.machine, token = add_machine(self.srv)
        gpus = tmp / "gpus.json"
        write_fake_gpus(gpus, [{"name": "Sim GPU", "memory_total": 2048}] * 4)
        base = random.randrange(40000, 49000, 100)
        agent_factory(self.srv, token, heartbeat=0.3, fake_gpus=gpus,
                      extra_args=["--docker-host", podman.docker_host, "--port-range",
                                  f"{base}-{base + 99}", "--state-dir", str(tmp / "agent-state")])
        wait_online(self.srv, self.machine)
        wait_until(lambda: len(machine_info(self.srv, self.machine)["gpu"]) == 4, 10,
                   what="4 GPUs reported")
        r = self.srv.post("/api/admin/images", self.admin_token,
                          json={"name": "busybox", "image": podman.image,
                                "description": "test image"})
        assert r.status_code == 200, r.text
        self.image_id = r.json()["id"]
        self.tmp = tmp
        self.admin = Cli(tmp / "admin")
        self.admin.login(self.srv.base_url, "admin", ADMIN_PASSWORD)
        self.account = unique("alice")
        assert self.srv.register(self.account, token=self.admin_token).status_code == 200
        self.alice = Cli(tmp / "alice")
        self.alice.login(self.srv.base_url, self.account, USER_PASSWORD)
        self.alice.ok("containers", "create", self.machine, "busybox", "--name", "dev", "-p", "22")


@pytest.fixture(scope="module")
def lab(module_server_factory, module_agent_factory, podman, tmp_path_factory) -> Cluster:
    return Cluster(module_server_factory, module_agent_factory, podman,
                   tmp_path_factory.mktemp("cli"))


# ---- accounts ---------------------------------------------------------------

def test_login_saves_private_config_and_whoami(lab):
    cfg = lab.alice.config_path
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    saved = json.loads(cfg.read_text())
    assert saved["server"] == lab.srv.base_url and saved["account"] == lab.account
    assert lab.srv.info(saved["token"])["account"] == lab.account
    assert lab.alice.ok("whoami").startswith(f"{lab.account} (user) on ")
    assert lab.alice.json("whoami")["account"] == lab.account


def test_login_refused_and_logout(lab, tmp_path):
    bob = Cli(tmp_path / "bob")
    bob.fails(1, "login", "--server", lab.srv.base_url, lab.account, "--password-stdin",
              input="not-the-password\n", contains="Wrong password")
    bob.fails(1, "login", "--server", lab.srv.base_url, "nosuchuser", "--password-stdin",
              input="whatever-pw\n", contains="Account not found")
    bob.login(lab.srv.base_url, lab.account, USER_PASSWORD)
    token = json.loads(bob.config_path.read_text())["token"]
    assert bob.ok("logout") == "Logged out\n"
    assert json.loads(bob.config_path.read_text())["token"] == ""
    r = lab.srv.get("/api/user/info", token)
    assert r.status_code == 401 and r.json()["message"] == "Invalid token"
    bob.fails(1, "whoami", contains="Not logged in; run `gpuhub login`")


def test_environment_overrides_the_file(lab, tmp_path):
    anon = Cli(tmp_path / "anon")
    out = anon.ok("whoami", env={"GPUHUB_SERVER": lab.srv.base_url,
                                 "GPUHUB_TOKEN": lab.admin_token})
    assert out.startswith("admin (admin)")
    # GPUHUB_TOKEN wins over the file's token.
    bad = lab.alice("whoami", env={"GPUHUB_TOKEN": "garbage"})
    assert bad.returncode == 1 and "Invalid token; run `gpuhub login` again" in bad.stderr


def test_passwd_and_profile(lab, tmp_path):
    account = unique("carol")
    assert lab.srv.register(account, token=lab.admin_token).status_code == 200
    carol = Cli(tmp_path / "carol")
    carol.login(lab.srv.base_url, account, USER_PASSWORD)
    carol.fails(1, "passwd", "--password-stdin", input="wrong-password\nnew-password-2\n",
                contains="Wrong password")
    assert carol.ok("passwd", "--password-stdin",
                    input=f"{USER_PASSWORD}\nnew-password-2\n") == "Password changed\n"
    assert lab.srv.login_resp(account, "new-password-2").status_code == 200
    info = carol.json("profile", "set", "--nickname", "Carol C", "--email", "c@example.org")
    assert info["nickname"] == "Carol C" and info["email"] == "c@example.org"
    out = carol.ok("profile", "set", "--email", "")
    assert "Carol C" in out and "c@example.org" not in out
    carol.fails(1, "profile", "set", "--email", "not-an-email", contains="email")
    carol.fails(2, "profile", "set")


def test_expired_token_asks_to_log_in_again(server_factory, tmp_path):
    srv = server_factory(config='[auth]\ntoken_lifetime = "2s"\n')
    user = Cli(tmp_path / "u")
    user.login(srv.base_url, "admin", ADMIN_PASSWORD)
    assert user.ok("whoami").startswith("admin")
    time.sleep(3)
    user.fails(1, "whoami", contains="Token expired; run `gpuhub login` again")
    user.fails(1, "machines", contains="Token expired")


# ---- listings -----------------------------------------------------------------

def test_machines_both_modes(lab):
    out = lab.alice.ok("machines")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["MACHINE", "STATE", "GPUS"]
    row = next(line for line in lines if line.startswith(lab.machine))
    assert re.match(rf"^{lab.machine}\s+online\s+\d/4\s+0: \d+% ", row), row
    assert len(re.findall(r"\d: \d+% \d+\.\d/2\.0 (free|\S+#\d+)", row)) == 4, row
    assert "\033" not in out
    nodes = lab.alice.ok("nodes")
    assert nodes.splitlines()[0] == lines[0] and lab.machine in nodes
    verbose = lab.alice.ok("machines", "-v")
    assert "CPU" in verbose.splitlines()[0] and "DISK GiB" in verbose.splitlines()[0]
    data = lab.alice.json("machines")
    m = next(m for m in data if m["id"] == lab.machine)
    assert m["online"] is True and len(m["gpu"]) == 4


def on_terminal(cli: Cli, args: list, columns: int, env: dict | None = None) -> tuple[int, str]:
    """Runs gpuhub with stdout on a pseudo-terminal `columns` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    e = dict(cli.env)
    e.update(env or {})
    p = subprocess.Popen([str(GPUHUB_CLI_BIN), *args], stdout=slave, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=e)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=30), b"".join(chunks).decode().replace("\r\n", "\n")


def test_tables_fit_the_terminal_width_and_colour(lab):
    piped = lab.alice.ok("machines")
    assert "\033" not in piped and max(len(line) for line in piped.splitlines()) > 60
    code, out = on_terminal(lab.alice, ["machines"], 60, env={"NO_COLOR": ""})
    assert code == 0
    assert "\033[32monline\033[0m" in out, out
    plain = re.sub(r"\033\[[0-9;]*m", "", out)
    assert all(len(line) <= 60 for line in plain.splitlines()), plain
    assert "…" in plain and lab.machine in plain
    code, out = on_terminal(lab.alice, ["machines"], 60, env={"NO_COLOR": "1"})
    assert code == 0 and "\033" not in out and lab.machine in out


def test_images_both_modes(lab):
    out = lab.alice.ok("images")
    assert out.splitlines()[0].split() == ["ID", "NAME", "IMAGE", "DESCRIPTION"]
    assert re.search(rf"^{lab.image_id}\s+busybox\s+\S+\s+test image$", out, re.M), out
    images = lab.alice.json("images")
    assert {"id": lab.image_id, "name": "busybox", "image": lab.podman.image,
            "description": "test image"} in images


def test_containers_lifecycle(lab):
    made = lab.alice.json("containers", "create", lab.machine, str(lab.image_id), "--name",
                          "cli", "-p", "8888")
    assert made["name"] == "cli" and made["status"] == "running"
    assert made["ports"][0]["container"] == 8888
    listed = lab.alice.json("containers")
    assert {c["name"] for c in listed} >= {"dev", "cli"}
    table = lab.alice.ok("containers", "ls")
    assert re.search(rf"^{made['id']}\s+cli\s+{lab.machine}\s+\S+\s+running\s+8888->\d+$",
                     table, re.M), table
    assert lab.alice.ok("containers", "stop", "cli") == "Container cli exited\n"
    assert lab.alice.json("containers", "start", str(made["id"]))["status"] == "running"
    assert lab.alice.ok("containers", "restart", "cli") == "Container cli running\n"
    assert lab.alice.ok("containers", "rm", "cli") == "Container cli deleted\n"
    assert "cli" not in {c["name"] for c in lab.alice.json("containers", "ls")}
    lab.alice.fails(1, "containers", "rm", "cli", contains="Container not found")
    lab.alice.fails(1, "containers", "create", lab.machine, "nosuchimage",
                    contains="Image not found")
    lab.alice.fails(1, "containers", "create", "nosuchmachine", "busybox",
                    contains="Machine not found")


# ---- tasks --------------------------------------------------------------------

def test_run_wait_streams_output_and_returns_exit_code(lab):
    p = lab.alice("run", "-m", lab.machine, "-c", "dev", "-g", "2", "-t", "1m", "--wait", "--",
                  "echo start; echo warn >&2; sleep 1; echo gpus=$CUDA_VISIBLE_DEVICES; exit 7")
    assert p.returncode == 7, (p.stdout, p.stderr)
    assert p.stdout.count("start\n") == 1 and p.stdout.count("warn\n") == 1
    assert re.search(r"^gpus=\d,\d$", p.stdout, re.M), p.stdout
    m = re.match(r"Task (\d+) running on (\S+) \(GPUs \d,\d\)", p.stderr)
    assert m and m.group(2) == lab.machine, p.stderr
    task = m.group(1)
    # The log of the finished task holds the same output.
    assert lab.alice.ok("log", task) == p.stdout
    assert lab.alice.ok("log", task, "-f") == p.stdout
    ok = lab.alice("run", "-m", lab.machine, "-c", "dev", "--gpus", "3", "-t", "30s", "-w",
                   "--", "seq", "1", "3")
    assert ok.returncode == 0 and ok.stdout == "1\n2\n3\n", (ok.stdout, ok.stderr)


def test_run_queue_cancel(lab):
    out = lab.alice.ok("run", "-m", lab.machine, "-c", "dev", "-g", "1", "-t", "90s", "--",
                       "sleep", "60")
    m = re.match(r"Task (\d+) (running|queued) on ", out)
    assert m, out
    task = int(m.group(1))
    mine = lab.alice.json("queue")
    assert task in [t["taskId"] for t in mine]
    table = lab.alice.ok("queue")
    assert table.splitlines()[0].split()[:5] == ["ID", "USER", "MACHINE", "GPUS", "STATE"]
    assert re.search(rf"^{task}\s+{lab.account}\s+{lab.machine}\s+\d\s+running\s", table, re.M), table
    assert task in [t["taskId"] for t in lab.admin.json("queue", "--machine", lab.machine)]
    assert task in [t["taskId"] for t in lab.admin.json("queue", "--all")]
    assert task in [t["taskId"] for t in lab.admin.json("queue", "--user", lab.account)]
    assert task not in [t["taskId"] for t in lab.admin.json("queue")]
    # Another user may not cancel it; its owner may.
    other = unique("dave")
    assert lab.srv.register(other, token=lab.admin_token).status_code == 200
    dave = Cli(lab.tmp / "dave")
    dave.login(lab.srv.base_url, other, USER_PASSWORD)
    dave.fails(1, "cancel", str(task), contains="Permission denied")
    assert lab.alice.ok("cancel", str(task)) == f"Task {task} cancelled\n"
    lab.alice.fails(1, "cancel", str(task), contains="Task already finished")
    lab.alice.fails(1, "cancel", "999999", contains="Task 999999 not found")

    def state():
        return next(t["status"] for t in lab.alice.json("queue") if t["taskId"] == task)
    wait_until(lambda: state() == "cancelled", 15, interval=0.5, what="cancelled")


def test_log_follow_ends_with_the_task(lab):
    out = lab.alice.ok("run", "-m", lab.machine, "-c", "dev", "-g", "1", "-t", "1m", "--",
                       "for i in 1 2 3 4; do echo line $i; sleep 0.5; done")
    task = re.match(r"Task (\d+)", out).group(1)
    p = lab.alice("log", task, "-f")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "line 1\nline 2\nline 3\nline 4\n", p.stdout


def test_run_refusals(lab):
    lab.alice.fails(1, "run", "-m", "nosuch", "-c", "dev", "-g", "1", "-t", "1m", "--", "true",
                    contains="Machine not found")
    lab.alice.fails(1, "run", "-m", lab.machine, "-c", "nosuch", "-g", "1", "-t", "1m", "--",
                    "true", contains="Container not found")
    lab.alice.fails(1, "run", "-m", lab.machine, "-c", "dev", "-g", "9", "-t", "1m", "--",
                    "true")
    lab.alice.fails(1, "run", "-m", lab.machine, "-c", "dev", "-g", "1", "-t", "100h", "--",
                    "true", contains="duration")


# ---- admin --------------------------------------------------------------------

def test_admin_users(lab, tmp_path):
    account = unique("erin")
    out = lab.admin.ok("admin", "add-user", account, "--password-stdin", input="erin-password-1\n")
    assert out.startswith(f"User {account} added")
    erin = Cli(tmp_path / "erin")
    erin.login(lab.srv.base_url, account, "erin-password-1")
    users = lab.admin.json("admin", "users")
    assert account in [u["account"] for u in users]
    assert re.search(rf"^\d+\s+{account}\s+user\b", lab.admin.ok("admin", "users"), re.M)
    erin.fails(1, "admin", "users", contains="Permission denied")
    lab.admin.fails(1, "admin", "add-user", account, "--password-stdin",
                    input="erin-password-1\n", contains="Account already exists")
    assert lab.admin.ok("admin", "rm-user", account) == f"User {account} deleted\n"
    erin.fails(1, "whoami", contains="User not include")


def test_admin_machines_and_images(lab):
    mid = unique("node-")
    out = lab.admin.ok("admin", "add-machine", mid)
    lines = out.strip().splitlines()
    assert f"--server ws://127.0.0.1:{lab.srv.port}/ws/agent" in out
    token = lines[-1]
    assert token and " " not in token
    assert mid in [m["id"] for m in lab.admin.json("admin", "machines")]
    assert re.search(rf"^{mid}\s", lab.admin.ok("admin", "machines"), re.M)
    lab.admin.fails(1, "admin", "add-machine", mid, contains="exists")
    assert lab.admin.ok("admin", "rm-machine", mid) == f"Machine {mid} removed\n"
    lab.admin.fails(1, "admin", "rm-machine", mid, contains="not found")

    img = lab.admin.json("admin", "add-image", "extra", "docker.io/lab/x:1",
                         "--description", "an extra image")
    assert img["name"] == "extra" and img["description"] == "an extra image"
    assert img["id"] in [i["id"] for i in lab.admin.json("admin", "images")]
    assert "docker.io/lab/x:1" in lab.admin.ok("admin", "images")
    assert lab.admin.ok("admin", "rm-image", str(img["id"])) == f"Image {img['id']} removed\n"
    lab.admin.fails(1, "admin", "rm-image", str(img["id"]), contains="Image not found")
    lab.alice.fails(1, "admin", "add-image", "x", "y", contains="Permission denied")


# ---- errors --------------------------------------------------------------------

def test_unreachable_server_is_exit_3(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    cli = Cli(tmp_path / "x", env={"GPUHUB_SERVER": url, "GPUHUB_TOKEN": "t"})
    for args in (["machines"], ["queue", "--json"], ["whoami"]):
        err = cli.fails(3, *args, contains="cannot reach 127.0.0.1:")
        assert err.startswith("gpuhub: ")
    cli.fails(3, "login", "--server", url, "admin", "--password-stdin", input="pw\n")


@pytest.mark.parametrize("args", [
    [], ["bogus"], ["run", "-m", "m", "-c", "c", "-g", "1", "--", "true"],
    ["run", "-m", "m", "-c", "c", "-t", "1m", "--", "true"],
    ["run", "-m", "m", "-c", "c", "-t", "1m", "-g", "1", "--gpus", "0", "--", "true"],
    ["run", "-m", "m", "-c", "c", "-t", "whenever", "-g", "1", "--", "true"],
    ["run", "-m", "m", "-c", "c", "-t", "1m", "--gpus", "0,x", "--", "true"],
    ["queue", "--all", "--user", "a"], ["cancel"], ["cancel", "x1"], ["log"],
    ["containers", "create", "m"], ["containers", "create", "m", "busybox", "-p", "http"],
    ["admin"], ["admin", "rm-image", "abc"], ["machines", "--bogus"],
])
def test_bad_arguments_are_exit_2(lab, args):
    p = lab.alice(*args)
    assert p.returncode == 2, (args, p.stdout, p.stderr)
    assert p.stderr.strip(), "a usage error says what is wrong"


def test_help_is_complete():
    cli = Cli(Path("/tmp") / unique("gpuhub-help-"))
    top = cli.ok("--help")
    for cmd in ("login", "logout", "whoami", "passwd", "profile", "machines", "images",
                "containers", "run", "queue", "cancel", "log", "admin"):
        assert re.search(rf"^\s+{cmd}\b", top, re.M), (cmd, top)
    assert "Exit codes" in top
    admin = cli.ok("admin", "--help")
    for cmd in ("users", "add-user", "rm-user", "machines", "add-machine", "rm-machine",
                "images", "add-image", "rm-image"):
        assert re.search(rf"^\s+{cmd}\b", admin, re.M), (cmd, admin)
    run = cli.ok("run", "--help")
    for opt in ("--machine", "--container", "--gpu-count", "--gpus", "--time", "--wait"):
        assert opt in run
