"""The web UI in a real browser: Debian's chromium driven by playwright-core
(tests/browser/scenarios.mjs), against gpuhubd with an agent on Podman and
four fake GPUs. One cluster is shared by the scenarios; each scenario is one
node process with a fresh browser, and saves screenshots under
$GPUHUB_TEST_OUT/browser (default build/test-output/browser).

Chromium and tests/browser/node_modules come from scripts/install-deps. Without
them the tests are skipped loudly, or fail when GPUHUB_REQUIRE_BROWSER=1
(scripts/run-tests sets it when chromium is installed)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from e2e_helpers import (ADMIN_PASSWORD, REPO_ROOT, add_machine, machine_info, make_png,
                         unique, wait_online, wait_until, write_fake_gpus)

BROWSER_DIR = REPO_ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
OUT = (Path(os.environ.get("GPUHUB_TEST_OUT", REPO_ROOT / "build" / "test-output")) / "browser").resolve()
CONFIG = f"""
web_root = "{REPO_ROOT / 'web'}"
[tasks]
kill_grace = "2s"
"""


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (scripts/install-deps installs chromium)"
    if not shutil.which("node"):
        return "node is not installed (scripts/install-deps installs nodejs)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "tests/browser/node_modules is missing (run: cd tests/browser && npm ci)"
    return None


@pytest.fixture(scope="module")
def ui(module_server_factory, module_agent_factory, podman, tmp_path_factory):
    why = _browser_missing()
    if why:
        if os.environ.get("GPUHUB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BROWSER TESTS CANNOT RUN: {why}", pytrace=False)
        pytest.skip(f"BROWSER TESTS SKIPPED: {why}")
    tmp = tmp_path_factory.mktemp("web-ui")
    srv = module_server_factory(config=CONFIG)
    admin = srv.admin_token()
    machine, token = add_machine(srv)
    gpus = tmp / "gpus.json"
    write_fake_gpus(gpus, [{"name": "Sim GPU", "memory_total": 1024}] * 4)
    base = random.randrange(40000, 49000, 100)
    module_agent_factory(srv, token, heartbeat=0.5, fake_gpus=gpus,
                         extra_args=["--docker-host", podman.docker_host, "--port-range",
                                     f"{base}-{base + 99}", "--state-dir", str(tmp / "state")])
    wait_online(srv, machine)
    wait_until(lambda: len(machine_info(srv, machine)["gpu"]) == 4, 10, what="4 GPUs reported")
    img = srv.post("/api/admin/images", admin, json={"name": "busybox", "image": podman.image})
    assert img.status_code == 200, img.text
    alice = srv.create_user(unique("alice"))
    bob = srv.create_user(unique("bob"))
    r = srv.post("/api/containers", alice[2], timeout=90,
                 json={"machine_id": machine, "image_id": img.json()["id"], "name": "dev"})
    assert r.status_code == 200, r.text
    photo = tmp / "photo.png"
    photo.write_bytes(make_png(8, 8))
    ctx = {
        "machine": machine, "admin_password": ADMIN_PASSWORD, "photo": str(photo),
        "alice": {"account": alice[0], "password": alice[1], "token2": srv.login(*alice[:2])},
        "bob": {"account": bob[0], "password": bob[1]},
        "new_account": unique("carol"), "new_machine": unique("node-new"),
    }
    return srv, ctx


def run_scenario(ui, name: str) -> None:
    srv, ctx = ui
    env = dict(os.environ, GPUHUB_URL=srv.base_url, GPUHUB_SCENARIO=json.dumps(ctx),
               GPUHUB_SHOT_DIR=str(OUT), CHROMIUM=CHROMIUM)
    p = subprocess.run(["node", "scenarios.mjs", name], cwd=BROWSER_DIR, env=env,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, (f"browser scenario {name} failed (screenshots in {OUT}):\n"
                               f"{p.stdout}\n{p.stderr}")


@pytest.mark.parametrize("name", ["signin", "cluster", "container", "request", "cancel",
                                  "photo", "admin"])
def test_browser(ui, name):
    run_scenario(ui, name)
