"""Shared helpers for the gpuhubd black-box end-to-end tests.

Only stdlib + requests. The `Server` class starts a real gpuhubd process on a
free port with its own data directory and offers small conveniences (admin
token, user creation, DB snapshots, raw sockets).
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "build" / "debug" / "apps" / "gpuhubd" / "gpuhubd"
GPUHUB_BIN = Path(os.environ.get("GPUHUB_BIN", str(DEFAULT_BIN)))
if not GPUHUB_BIN.is_absolute():
    GPUHUB_BIN = (REPO_ROOT / GPUHUB_BIN).resolve()

ADMIN_PASSWORD = "Admin-Passw0rd-e2e"
USER_PASSWORD = "user-password-1"
START_TIMEOUT = 20.0
HTTP_TIMEOUT = 15.0

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "ThreadSanitizer",
)

LISTEN_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

INFO_KEYS = {"id", "account", "nickname", "email", "phone", "photo", "role"}

_counter = itertools.count(1)


def unique(prefix: str = "u") -> str:
    """A fresh, valid account name."""
    return f"{prefix}{os.getpid() % 1000}x{next(_counter)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth(token: str | None, bearer: bool = True) -> dict:
    if token is None:
        return {}
    return {"Authorization": f"Bearer {token}" if bearer else token}


class ServerError(Exception):
    pass


class ChildProcess:
    """A gpuhub binary run by a test: its stderr logs (one per start), a stop that
    asserts exit code 0, kill -9, and a health check that fails on a crash or any
    sanitizer report. Subclasses set `name` and call _spawn()."""

    name = "process"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self.exit_codes: list[int] = []
        self._starts = 0
        self._expected_exit = False

    def _spawn(self, args: list[str], env: dict, prefix: str) -> Path:
        """Starts `args` with stdout and stderr in new files; returns the stderr path."""
        self._starts += 1
        log = self.root / f"{prefix}stderr-{self._starts}.log"
        self.logs.append(log)
        env = dict(env)
        # ASan: keep reports on stderr, do not hide them.
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self._expected_exit = False
        # The binary may be being relinked while the suite runs (ETXTBSY, EACCES,
        # ENOEXEC): retry the exec for a while instead of failing spuriously.
        exec_deadline = time.monotonic() + 60
        while True:
            try:
                with open(log, "wb") as errf, \
                        open(self.root / f"{prefix}stdout-{self._starts}.log", "wb") as outf:
                    self.proc = subprocess.Popen(args, stdout=outf, stderr=errf, env=env,
                                                 stdin=subprocess.DEVNULL)
                return log
            except OSError:
                if time.monotonic() > exec_deadline:
                    raise
                time.sleep(1)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def _before_signal(self) -> None:
        """Hook run before a stop signal is sent."""

    def _signal_and_wait(self, sig, timeout: float) -> int:
        """Sends `sig`, waits for the exit and asserts exit code 0."""
        assert self.proc is not None
        self._expected_exit = True
        if self.proc.poll() is None:
            self._before_signal()
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of signal {sig}:\n"
                                 + self.log_text()[-3000:])
        self.exit_codes.append(rc)
        assert rc == 0, f"{self.name} exited with {rc} after signal {sig}:\n{self.log_text()[-4000:]}"
        return rc

    def kill9(self):
        assert self.proc is not None
        self._expected_exit = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def check_health(self) -> None:
        """Raise AssertionError if the process crashed or logged a sanitizer report."""
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                idx = text.index(marker)
                raise AssertionError(f"sanitizer report in {self.name} stderr ({marker}):\n"
                                     + text[max(0, idx - 500): idx + 6000])
        if self.proc is not None and not self._expected_exit and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} died unexpectedly with code "
                                 f"{self.proc.returncode}:\n" + text[-4000:])

    def teardown(self) -> None:
        try:
            if self.running():
                self.stop()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self._before_signal()
                self.proc.kill()
                self.proc.wait()
        self.check_health()


class Server(ChildProcess):
    """One gpuhubd process (possibly restarted several times on one data dir)."""

    name = "gpuhubd"

    def __init__(self, root: Path, config: str | None = None, env: dict | None = None,
                 admin_password: str | None = ADMIN_PASSWORD, port: int = 0):
        super().__init__(root)
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.config_text = config
        self.config_path = None
        if config is not None:
            self.config_path = self.root / "config.toml"
            self.config_path.write_text(config)
        self.extra_env = dict(env or {})
        self.admin_password = admin_password
        self.listen_port = port
        self.port: int | None = None
        self._admin_token: str | None = None

    # ----- process control -------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gpuhub.db"

    def _env(self) -> dict:
        env = dict(os.environ)
        env.pop("GPUHUB_ADMIN_PASSWORD", None)
        if self.admin_password is not None:
            env["GPUHUB_ADMIN_PASSWORD"] = self.admin_password
        env.update(self.extra_env)
        return env

    def start(self) -> "Server":
        if not GPUHUB_BIN.exists():
            raise ServerError(f"gpuhubd binary not found at {GPUHUB_BIN}")
        args = [str(GPUHUB_BIN), "--listen", f"127.0.0.1:{self.listen_port}",
                "--data", str(self.data_dir), "--log-level", "info"]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        self._admin_token = None
        log = self._spawn(args, self._env(), prefix="")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            m = LISTEN_RE.search(text)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise ServerError(
                    f"gpuhubd exited with {self.proc.returncode} before listening:\n{text[-4000:]}")
            time.sleep(0.05)
        else:
            self.proc.kill()
            self.proc.wait()
            raise ServerError(f"gpuhubd did not log 'listening on' within {START_TIMEOUT}s:\n"
                              + log.read_text(errors="replace")[-4000:])
        if self.listen_port:
            assert self.port == self.listen_port
        # Wait until it answers.
        while time.monotonic() < deadline:
            try:
                r = requests.get(self.base_url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise ServerError("gpuhubd never answered /healthz with 200")

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> float:
        """Send `sig`, wait for exit, assert exit code 0. Returns seconds taken."""
        t0 = time.monotonic()
        self._signal_and_wait(sig, timeout)
        return time.monotonic() - t0

    def restart(self, port: int | None = None) -> "Server":
        if self.running():
            self.stop()
        if port is not None:
            self.listen_port = port
        return self.start()

    # ----- HTTP helpers ----------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        headers.update(auth(token))
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return requests.request(method, self.url(path), headers=headers, **kw)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token, **kw)

    def post(self, path, token=None, **kw):
        return self.request("POST", path, token, **kw)

    def login_resp(self, account: str, password: str) -> requests.Response:
        return self.post("/api/auth/login", json={"account": account, "password": password})

    def login(self, account: str, password: str) -> str:
        r = self.login_resp(account, password)
        assert r.status_code == 200, (account, r.status_code, r.text)
        tok = r.json()["access_token"]
        assert isinstance(tok, str) and tok
        return tok

    def admin_token(self, fresh: bool = False) -> str:
        if fresh or self._admin_token is None:
            assert self.admin_password is not None
            self._admin_token = self.login("admin", self.admin_password)
        return self._admin_token

    def register(self, account: str, password: str = USER_PASSWORD, token: str | None = None,
                 **fields) -> requests.Response:
        body = {"account": account, "password": password}
        body.update(fields)
        return self.post("/api/auth/register", token or self.admin_token(), json=body)

    def create_user(self, account: str | None = None, password: str = USER_PASSWORD,
                    role: str | None = None, **fields):
        """Register a user and log it in. Returns (account, password, token, id)."""
        account = account or unique()
        if role is not None:
            fields["role"] = role
        r = self.register(account, password, **fields)
        assert r.status_code == 200, (r.status_code, r.text)
        uid = r.json()["id"]
        return account, password, self.login(account, password), uid

    def info(self, token: str) -> dict:
        r = self.get("/api/user/info", token)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    # ----- raw sockets -----------------------------------------------------
    def connect(self, timeout: float = 10.0) -> "RawConn":
        return RawConn("127.0.0.1", self.port, timeout)

    # ----- DB snapshot -----------------------------------------------------
    def db_snapshot(self) -> list[str]:
        return db_snapshot(self.db_path)

    def photo_files(self) -> list[str]:
        d = self.data_dir / "photos"
        if not d.exists():
            return []
        return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


def db_snapshot(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        conn.execute("BEGIN")
        lines = list(conn.iterdump())
        conn.execute("ROLLBACK")
        return lines
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Raw HTTP over a socket
# --------------------------------------------------------------------------
class RawResponse:
    def __init__(self, status: int, reason: str, headers: dict, body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case keys
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<RawResponse {self.status} {self.headers} {self.body[:200]!r}>"


class RawConn:
    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed_by_peer = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _recv(self, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed_by_peer = True
        return data

    def read_response(self, timeout: float = 10.0) -> RawResponse | None:
        """Read one response. None when the peer closed before sending any bytes."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete response head within {timeout}s: {self.buf[:200]!r}")
            data = self._recv(left)
            if not data:
                if not self.buf:
                    return None
                raise AssertionError(f"connection closed mid-response: {self.buf[:500]!r}")
            self.buf += data
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert parts[0].startswith("HTTP/1."), lines[0]
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(rest) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("body not complete")
                data = self._recv(left)
                if not data:
                    raise AssertionError("connection closed mid-body")
                rest += data
            body, self.buf = rest[:n], rest[n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in rest:
                    data = self._recv(max(0.01, deadline - time.monotonic()))
                    if not data:
                        raise AssertionError("closed mid-chunk")
                    rest += data
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(rest) < size + 2:
                    data = self._recv(max(0.01, deadline - time.monotonic()))
                    if not data:
                        raise AssertionError("closed mid-chunk")
                    rest += data
                if size == 0:
                    # ignore trailers (assume none)
                    self.buf = rest[2:]
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        else:
            body = rest
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                data = self._recv(left)
                if not data:
                    break
                body += data
            self.buf = b""
        return RawResponse(status, reason, headers, body)

    def wait_closed(self, timeout: float) -> bool:
        """True if the peer closes the connection within `timeout` (data is discarded)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                data = self._recv(left)
            except (socket.timeout, TimeoutError):
                return False
            if not data:
                return True
            self.buf += data


def raw_request_with_body(port: int, head: bytes, body_size: int, chunk: int = 65536,
                          timeout: float = 15.0, byte: bytes = b"a") -> RawResponse | None:
    """Send `head` then `body_size` bytes from a sender thread while the main
    thread reads the response, so an early error response is seen even if the
    server stops reading."""
    conn = RawConn("127.0.0.1", port, timeout)
    conn.send(head)
    stop = threading.Event()

    def sender():
        sent = 0
        block = byte * chunk
        try:
            while sent < body_size and not stop.is_set():
                n = min(chunk, body_size - sent)
                conn.sock.sendall(block[:n])
                sent += n
        except OSError:
            pass

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        return conn.read_response(timeout)
    finally:
        stop.set()
        conn.close()
        t.join(5)


# --------------------------------------------------------------------------
# JWT helpers
# --------------------------------------------------------------------------
def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt_parts(token: str):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------
def make_png(w: int = 2, h: int = 2, rgb=(200, 30, 30)) -> bytes:
    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


GIF_1x1 = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
           b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

# 1x1 lossless WebP
WEBP_1x1 = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")

# Minimal baseline JPEG (1x1 grey)
JPEG_1x1 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////"
    "////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/a"
    "AAgBAQABPxA=")

IMAGES = {
    "png": (make_png(), "image/png"),
    "jpeg": (JPEG_1x1, "image/jpeg"),
    "gif": (GIF_1x1, "image/gif"),
    "webp": (WEBP_1x1, "image/webp"),
}

IMAGE_MAGIC = {
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "image/gif": b"GIF8",
    "image/webp": b"RIFF",
}


def multipart(parts, boundary: str = "----gpuhubE2EBoundary7MA4YWxk"):
    """parts: list of (name, filename|None, content_type|None, bytes). Returns (body, content_type)."""
    out = b""
    for name, filename, ctype, data in parts:
        out += f"--{boundary}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += disp.encode() + b"\r\n"
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def upload_photo(srv: Server, token: str, data: bytes, filename: str = "a.png",
                 ctype: str | None = "application/octet-stream", method: str = "POST",
                 header_with_file: bool = True) -> requests.Response:
    parts = [("file", filename, ctype, data)]
    headers = {}
    if header_with_file:
        headers["with_file"] = "true"
    else:
        parts.insert(0, ("with_file", None, None, b"true"))
    body, ct = multipart(parts)
    headers["Content-Type"] = ct
    return srv.request(method, "/api/user/set_photo", token, data=body, headers=headers)


def assert_error(r, status: int, message: str | None = None, contains: str | None = None):
    """Assert an error response: status and JSON body {"message": ...}."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {r.text[:500]!r}")
    assert isinstance(body, dict) and isinstance(body.get("message"), str), body
    if message is not None:
        assert body["message"] == message, f"expected message {message!r}, got {body['message']!r}"
    if contains is not None:
        assert contains in body["message"], f"{contains!r} not in message {body['message']!r}"
    return body


# --------------------------------------------------------------------------
# Machines: gpuhub-agent processes, fake GPU files, WebSocket clients
# --------------------------------------------------------------------------
DEFAULT_AGENT_BIN = REPO_ROOT / "build" / "debug" / "apps" / "gpuhub-agent" / "gpuhub-agent"
GPUHUB_AGENT_BIN = Path(os.environ.get("GPUHUB_AGENT_BIN", str(DEFAULT_AGENT_BIN)))
if not GPUHUB_AGENT_BIN.is_absolute():
    GPUHUB_AGENT_BIN = (REPO_ROOT / GPUHUB_AGENT_BIN).resolve()

DEFAULT_CLI_BIN = REPO_ROOT / "build" / "debug" / "apps" / "gpuhub" / "gpuhub"
GPUHUB_CLI_BIN = Path(os.environ.get("GPUHUB_CLI_BIN", str(DEFAULT_CLI_BIN)))
if not GPUHUB_CLI_BIN.is_absolute():
    GPUHUB_CLI_BIN = (REPO_ROOT / GPUHUB_CLI_BIN).resolve()

MACHINE_KEYS = {"id", "ip", "online", "last_seen", "gpu", "cpu", "memory", "disk"}
GPU_KEYS = {"index", "uuid", "name", "memory_total", "memory_used", "utilization",
            "temperature", "task_id", "account"}
ISO_Z_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def wait_until(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `pred` until it returns a truthy value (returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def write_fake_gpus(path: Path, gpus: list) -> None:
    """Atomically (write + rename) replace a fake GPU file, as FakeGpuSource asks."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{next(_counter)}")
    tmp.write_text(json.dumps(gpus))
    os.replace(tmp, path)


def machines_info(srv: "Server", token: str | None = None) -> list:
    r = srv.get("/api/machines/info", token or srv.admin_token())
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def machine_info(srv: "Server", machine_id: str, token: str | None = None) -> dict | None:
    for m in machines_info(srv, token):
        if m["id"] == machine_id:
            return m
    return None


def add_machine(srv: "Server", machine_id: str | None = None) -> tuple[str, str]:
    """POST /api/admin/machines; returns (id, agent_token)."""
    machine_id = machine_id or unique("node-")
    r = srv.post("/api/admin/machines", srv.admin_token(), json={"id": machine_id})
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert body["id"] == machine_id and isinstance(body["agent_token"], str), body
    return machine_id, body["agent_token"]


def wait_online(srv: "Server", machine_id: str, online: bool = True, timeout: float = 10.0,
                pred=None) -> dict:
    """Wait until machine `machine_id` has online == `online` (and `pred(m)` if given)."""
    def check():
        m = machine_info(srv, machine_id)
        if m is not None and m["online"] is online and (pred is None or pred(m)):
            return m
        return None
    return wait_until(check, timeout, what=f"machine {machine_id} online={online}")


class Agent(ChildProcess):
    """One gpuhub-agent process. Its stderr is checked for sanitizer reports."""

    name = "gpuhub-agent"

    def __init__(self, root: Path, port: int, token: str | None = None,
                 token_file: Path | None = None, heartbeat: float | None = 0.3,
                 fake_gpus: Path | None = None, disk_path: str | None = None,
                 log_level: str = "info", extra_args=(), env: dict | None = None):
        super().__init__(root)
        self.port = port
        self.token = token
        self.token_file = token_file
        self.heartbeat = heartbeat
        self.fake_gpus = fake_gpus
        self.disk_path = disk_path
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self._stopped = False

    def args(self) -> list[str]:
        a = [str(GPUHUB_AGENT_BIN), "--server", f"ws://127.0.0.1:{self.port}",
             "--log-level", self.log_level]
        if self.token_file is not None:
            a += ["--token-file", str(self.token_file)]
        elif self.token is not None:
            a += ["--token", self.token]
        if self.heartbeat is not None:
            a += ["--heartbeat", str(self.heartbeat)]
        if self.fake_gpus is not None:
            a += ["--fake-gpus", str(self.fake_gpus)]
        if self.disk_path is not None:
            a += ["--disk-path", str(self.disk_path)]
        if "--state-dir" not in self.extra_args:  # never the machine's /var/lib/gpuhub-agent
            a += ["--state-dir", str(self.root / "agent-state")]
        return a + self.extra_args

    def start(self) -> "Agent":
        if not GPUHUB_AGENT_BIN.exists():
            raise ServerError(f"gpuhub-agent binary not found at {GPUHUB_AGENT_BIN}")
        self._stopped = False
        self._spawn(self.args(), {**os.environ, **self.extra_env}, prefix="agent-")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def count(self, text: str) -> int:
        return self.log_text().count(text)

    def wait_log(self, text: str, timeout: float = 10.0, count: int = 1) -> None:
        def check():
            if self.count(text) >= count:
                return True
            if not self.running():
                raise AssertionError(f"gpuhub-agent exited ({self.proc.returncode}) while waiting "
                                     f"for {text!r}:\n{self.log_text()[-3000:]}")
            return False
        try:
            wait_until(check, timeout, what=f"agent log {text!r} x{count}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nagent log:\n{self.log_text()[-3000:]}") from None

    def wait_connected(self, timeout: float = 15.0, count: int = 1) -> None:
        self.wait_log("connected to 127.0.0.1:", timeout, count)

    def sigstop(self):
        assert self.running()
        self.proc.send_signal(signal.SIGSTOP)
        self._stopped = True

    def sigcont(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self._stopped = False

    def _before_signal(self) -> None:
        self.sigcont()  # a stopped process cannot act on SIGTERM

    def stop(self, timeout: float = 15.0) -> int:
        """SIGCONT (if stopped) then SIGTERM; waits and asserts exit code 0."""
        return self._signal_and_wait(signal.SIGTERM, timeout)


# ----- WebSocket clients (websocket-client) ---------------------------------
def ws_connect(srv: "Server", path: str = "/ws", timeout: float = 10.0):
    import websocket  # websocket-client; imported lazily so other modules need not have it
    return websocket.create_connection(f"ws://127.0.0.1:{srv.port}{path}", timeout=timeout)


def ws_send(ws, type_: str, data=None) -> None:
    msg = {"type": type_}
    if data is not None:
        msg["data"] = data
    ws.send(json.dumps(msg))


def ws_recv(ws, timeout: float = 10.0) -> dict:
    """The next text message as JSON; AssertionError if the connection closes first."""
    import websocket
    ws.settimeout(timeout)
    try:
        text = ws.recv()
    except websocket.WebSocketTimeoutException:
        raise AssertionError(f"no WebSocket message within {timeout}s") from None
    except (websocket.WebSocketConnectionClosedException, ConnectionError) as e:
        raise AssertionError(f"WebSocket closed while waiting for a message: {e!r}") from None
    assert text, "WebSocket closed (close frame) while waiting for a message"
    return json.loads(text)


def ws_recv_until(ws, pred, timeout: float = 10.0) -> dict:
    """Skip messages until one satisfies `pred`."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching WebSocket message within {timeout}s; saw {seen}")
        try:
            m = ws_recv(ws, left)
        except AssertionError as e:
            raise AssertionError(f"{e}; saw {seen}") from None
        if pred(m):
            return m
        seen.append(m)


def ws_drain(ws, timeout: float = 0.2) -> list:
    """Every message that arrives within `timeout` (until a quiet gap or close), as JSON."""
    import websocket
    out = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            text = ws.recv()
        except (websocket.WebSocketTimeoutException, websocket.WebSocketConnectionClosedException,
                ConnectionError, OSError):
            break
        if not text:
            break
        out.append(json.loads(text))
    return out


def ws_wait_closed(ws, timeout: float = 5.0) -> bool:
    """True when the server ends the connection (close frame or TCP close) within `timeout`;
    other messages are discarded."""
    import websocket
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ws.settimeout(left)
        try:
            text = ws.recv()
        except websocket.WebSocketTimeoutException:
            return False
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return True
        if text == "" or text is None:
            return True


def ws_auth(srv: "Server", token: str, path: str = "/ws"):
    """A /ws connection authenticated with a user token; checks the auth reply."""
    ws = ws_connect(srv, path)
    ws_send(ws, "auth", {"token": token})
    m = ws_recv(ws)
    assert m["type"] == "auth" and m["data"]["ok"] is True, m
    return ws


def agent_ws(srv: "Server", token: str, version="1"):
    """A simulated agent on /ws/agent; returns (ws, auth reply)."""
    ws = ws_connect(srv, "/ws/agent")
    ws_send(ws, "auth", {"token": token, "version": version})
    return ws, ws_recv(ws)


def sim_gpu(index: int, memory_used: int = 0, **kw) -> dict:
    g = {"index": index, "uuid": f"GPU-sim-{index}", "name": "Sim GPU", "memory_total": 16384,
         "memory_used": memory_used, "utilization": 0, "temperature": 30, "processes": []}
    g.update(kw)
    return g


def sim_inventory(gpus=None, ip: str = "", hostname: str = "simhost") -> dict:
    """A full inventory as gpuhub-agent sends it (proto::ToJson)."""
    return {"hostname": hostname, "ip": ip,
            "gpu": gpus if gpus is not None else [sim_gpu(0)],
            "cpu": {"name": "Sim CPU", "cores": 8, "usage": 12.5},
            "memory": {"total": 32000, "used": 1000},
            "disk": {"total": 500, "used": 100}}


# --------------------------------------------------------------------------
# Containers: a private Podman service with the Docker Engine API
# --------------------------------------------------------------------------
PODMAN_SERVICE = REPO_ROOT / "scripts" / "podman-service"
DOCKER_API = "/v1.41"  # the Docker Engine API version Podman 4.3 serves


class PodmanUnavailable(Exception):
    """Podman cannot serve or run containers on this host; the message says why."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the Docker Engine API)."""

    def __init__(self, path: str, timeout: float = 30.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Podman:
    """`scripts/podman-service` on one directory: a Podman service with its own
    configuration and storage, the test image already in it.

    .socket       the service's Unix socket (Path)
    .docker_host  "unix://" + socket, for gpuhub-agent --docker-host
    .image        "localhost/gpuhub-test:latest": busybox; without a Cmd it serves
                  /www on port 8080 (index.html holds INDEX_TEXT) and stays up
    .cli(*args)   the podman CLI on the same storage
    .containers() `podman ps -a` as a list of dicts
    .api(...)     one Docker Engine API request on the socket
    """

    IMAGE = "localhost/gpuhub-test:latest"
    INDEX_TEXT = "gpuhub-test image: httpd is up"  # as in scripts/podman-service
    START_TIMEOUT = 120.0  # the script bounds its own wait; this catches a hang

    def __init__(self, root: Path):
        self.root = Path(root)
        self.image = self.IMAGE
        self.socket: Path | None = None

    @property
    def docker_host(self) -> str:
        assert self.socket is not None, "Podman service not started"
        return f"unix://{self.socket}"

    def log_text(self) -> str:
        p = self.root / "podman.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self) -> "Podman":
        """Starts the service and proves that a container runs; raises
        PodmanUnavailable (with the reason) when either fails."""
        try:
            r = subprocess.run([str(PODMAN_SERVICE), "start", str(self.root)],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=self.START_TIMEOUT)
        except FileNotFoundError as e:
            raise PodmanUnavailable(f"cannot run {PODMAN_SERVICE}: {e}") from None
        except subprocess.TimeoutExpired:
            raise PodmanUnavailable(f"`{PODMAN_SERVICE} start` did not finish within "
                                    f"{self.START_TIMEOUT}s") from None
        if r.returncode != 0:
            raise PodmanUnavailable(f"`scripts/podman-service start` failed ({r.returncode}):\n"
                                    + (r.stderr + r.stdout).strip())
        self.socket = Path(r.stdout.strip().splitlines()[-1])
        # The service answering does not prove that containers can run.
        p = self.cli("run", "--rm", self.image, "/bin/echo", "ran", check=False)
        if p.returncode != 0 or p.stdout.strip() != "ran":
            raise PodmanUnavailable("the Podman service is up but `podman run` fails here:\n"
                                    + (p.stderr + p.stdout).strip()[-3000:])
        return self

    def stop(self) -> None:
        """Stops the service and removes every container in its storage."""
        r = subprocess.run([str(PODMAN_SERVICE), "stop", str(self.root)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"podman-service stop failed: {r.stderr}{r.stdout}"

    def cli(self, *args: str, check: bool = True,
            timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Runs `podman ARGS` on this service's storage; text output. With `check`,
        a non-zero exit is an AssertionError that shows stderr."""
        r = subprocess.run([str(PODMAN_SERVICE), "cli", str(self.root), *map(str, args)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(map(str, args))} exited with "
                                 f"{r.returncode}:\n{r.stderr}{r.stdout}")
        return r

    def containers(self) -> list:
        """Every container in the storage (`podman ps -a --format json`)."""
        out = self.cli("ps", "-a", "--format", "json").stdout.strip()
        return json.loads(out) if out else []

    def api(self, method: str, path: str, body=None, timeout: float = 30.0):
        """One Docker Engine API request (`path` without the /v1.41 prefix);
        returns (status, JSON body or text or None)."""
        conn = UnixHTTPConnection(str(self.socket), timeout=timeout)
        try:
            headers = {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, DOCKER_API + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if not raw:
            return resp.status, None
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")
