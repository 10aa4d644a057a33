"""Fixtures for the gpuhubd end-to-end suite.

Run with Debian's python:  /usr/bin/python3 -m pytest tests/e2e
The binary is $GPUHUB_BIN (default build/debug/apps/gpuhubd/gpuhubd).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_helpers import (GPUHUB_AGENT_BIN, GPUHUB_BIN, Agent, Podman,  # noqa: E402
                         PodmanUnavailable, Server)

_live_servers: list[Server] = []
_live_agents: list[Agent] = []


class _Factory:
    def __init__(self, tmp_path_factory, label):
        self.tmp_path_factory = tmp_path_factory
        self.label = label
        self.servers: list[Server] = []

    def __call__(self, config: str | None = None, env: dict | None = None,
                 start: bool = True, **kw) -> Server:
        if not GPUHUB_BIN.exists():
            pytest.skip(f"gpuhubd binary not built: {GPUHUB_BIN}")
        root = self.tmp_path_factory.mktemp(self.label)
        srv = Server(root, config=config, env=env, **kw)
        self.servers.append(srv)
        _live_servers.append(srv)
        if start:
            srv.start()
        return srv

    def finish(self):
        errors = []
        for srv in self.servers:
            try:
                srv.teardown()
            except AssertionError as e:  # collect, report all
                errors.append(str(e))
            finally:
                if srv in _live_servers:
                    _live_servers.remove(srv)
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def server_factory(tmp_path_factory):
    """Function-scoped: `server_factory(config=TOML, env={...})` starts a fresh gpuhubd."""
    f = _Factory(tmp_path_factory, "srv")
    yield f
    f.finish()


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory):
    f = _Factory(tmp_path_factory, "msrv")
    yield f
    f.finish()


@pytest.fixture(scope="module")
def srv(module_server_factory) -> Server:
    """One default server shared by the tests of a module."""
    return module_server_factory()


class _AgentFactory:
    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.agents: list[Agent] = []

    def __call__(self, server, token: str, token_file: bool = True, start: bool = True,
                 **kw) -> Agent:
        """An agent for `server` (a Server or a port) with `token`, passed through
        --token-file (default) or --token. Other keywords go to Agent."""
        if not GPUHUB_AGENT_BIN.exists():
            pytest.skip(f"gpuhub-agent binary not built: {GPUHUB_AGENT_BIN}")
        root = self.tmp_path_factory.mktemp("agent")
        port = server if isinstance(server, int) else server.port
        if token_file:
            tf = root / "agent-token"
            tf.write_text(token + "\n")
            tf.chmod(0o600)
            agent = Agent(root, port, token_file=tf, **kw)
        else:
            agent = Agent(root, port, token=token, **kw)
        self.agents.append(agent)
        _live_agents.append(agent)
        if start:
            agent.start()
        return agent

    def finish(self):
        errors = []
        for agent in self.agents:
            try:
                agent.teardown()
            except AssertionError as e:
                errors.append(str(e))
            finally:
                if agent in _live_agents:
                    _live_agents.remove(agent)
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def agent_factory(tmp_path_factory):
    """Function-scoped: `agent_factory(server, token, heartbeat=0.3, fake_gpus=PATH)` starts a
    gpuhub-agent; every agent is stopped (SIGCONT, SIGTERM, exit 0) and checked at teardown."""
    f = _AgentFactory(tmp_path_factory)
    yield f
    f.finish()


@pytest.fixture(scope="module")
def module_agent_factory(tmp_path_factory):
    """Module-scoped agent_factory, for agents shared by the tests of a module."""
    f = _AgentFactory(tmp_path_factory)
    yield f
    f.finish()


@pytest.fixture(autouse=True)
def _no_crash_after_each_test():
    """After every test, every live server and agent must still be up and clean of
    sanitizer reports."""
    yield
    for s in list(_live_servers):
        s.check_health()
    for a in list(_live_agents):
        a.check_health()


# ----- containers: one private Podman service per session --------------------
_podman_skip_reason: str | None = None


def _loud(config, title: str, text: str) -> None:
    """Writes a banner to the terminal, past output capture and -q."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if tr is None:
        print(f"\n!!!!! {title} !!!!!\n{text}\n", file=sys.__stderr__, flush=True)
        return

    def write():
        tr.ensure_newline()
        tr.write_sep("!", title, red=True, bold=True)
        for line in text.splitlines():
            tr.write_line(line, red=True)
        tr.write_sep("!", red=True, bold=True)
    if capman is not None:
        with capman.global_and_fixture_disabled():
            write()
    else:
        write()


@pytest.fixture(scope="session")
def podman(request, tmp_path_factory):
    """Session-scoped Podman service with the Docker Engine API (scripts/podman-service):
    .socket, .docker_host, .image, .cli(*args), .containers(), .api(method, path, body).
    Every container is removed at the end. When Podman cannot run containers on
    this host the tests that use it are skipped, loudly, with the reason; with
    GPUHUB_REQUIRE_CONTAINERS=1 (scripts/run-tests sets it when
    `scripts/podman-service check` passes) they fail instead."""
    global _podman_skip_reason
    root = tmp_path_factory.mktemp("podman")
    own_root = None
    if len(str(root / "podman.sock")) > 100:  # sun_path holds 108 bytes
        root = own_root = Path(tempfile.mkdtemp(prefix="gpuhub-podman-", dir="/tmp"))
    pm = Podman(root)
    why = None
    try:
        pm.start()
    except PodmanUnavailable as e:
        why = str(e)
    if why is not None:
        try:
            pm.stop()
        except Exception:  # noqa: BLE001  (best effort; the reason below matters)
            pass
        if own_root is not None:
            shutil.rmtree(own_root, ignore_errors=True)
        reason = (f"CONTAINER TESTS CANNOT RUN: Podman cannot run containers here: {why}\n"
                  f"(service dir {root}; `scripts/podman-service check` says more; "
                  "see docs/development.md, \"Containers in tests\")")
        if os.environ.get("GPUHUB_REQUIRE_CONTAINERS") == "1":
            pytest.fail(reason + "\nGPUHUB_REQUIRE_CONTAINERS=1: this is a failure, not a skip",
                        pytrace=False)
        _podman_skip_reason = reason
        _loud(request.config, "CONTAINER TESTS SKIPPED", reason)
        pytest.skip(reason)
    try:
        yield pm
    finally:
        pm.stop()
        if own_root is not None:
            shutil.rmtree(own_root, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _podman_skip_reason is not None:
        terminalreporter.write_sep("!", "CONTAINER TESTS SKIPPED", red=True, bold=True)
        for line in _podman_skip_reason.splitlines():
            terminalreporter.write_line(line, red=True)
        terminalreporter.write_sep("!", red=True, bold=True)
