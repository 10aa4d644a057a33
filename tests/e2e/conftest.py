"""Fixtures for the gpuhubd end-to-end suite.

Run with Debian's python:  /usr/bin/python3 -m pytest tests/e2e
The binary is $GPUHUB_BIN (default build/debug/apps/gpuhubd/gpuhubd).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_helpers import GPUHUB_BIN, Server  # noqa: E402

_live_servers: list[Server] = []


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


@pytest.fixture(autouse=True)
def _no_crash_after_each_test():
    """After every test, every live server must still be up and clean of sanitizer reports."""
    yield
    for s in list(_live_servers):
        s.check_health()
