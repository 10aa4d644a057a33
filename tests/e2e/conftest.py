"""Fixtures for the gpuhubd end-to-end suite.

Run with Debian's python:  /usr/bin/python3 -m pytest tests/e2e
The binary is $GPUHUB_BIN (default build/debug/apps/gpuhubd/gpuhubd).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_helpers import GPUHUB_AGENT_BIN, GPUHUB_BIN, Agent, Server  # noqa: E402

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


@pytest.fixture(autouse=True)
def _no_crash_after_each_test():
    """After every test, every live server and agent must still be up and clean of
    sanitizer reports."""
    yield
    for s in list(_live_servers):
        s.check_health()
    for a in list(_live_agents):
        a.check_health()
