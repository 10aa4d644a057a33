"""The web UI's files served by gpuhubd at "/" (docs/web.md): content types,
cache validation, HEAD, path traversal, and the API and /ws keeping priority."""

from __future__ import annotations

import pytest

from e2e_helpers import REPO_ROOT

WEB = REPO_ROOT / "web"


@pytest.fixture(scope="module")
def web(module_server_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("webroot")
    (root / "avatars").mkdir()
    (root / "avatars" / "fox.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "index.html").write_text("<!doctype html><title>gpuhub</title>")
    (root / "app.js").write_text("export const x = 1;\n")
    (root / "a.css").write_text("body{}")
    (root / "m.json").write_text("{}")
    (root / "f.woff2").write_bytes(b"wOF2")
    (root / ".env").write_text("secret")
    # Files that the API and /ws must keep hidden.
    (root / "api").mkdir()
    (root / "api" / "nothing").write_text("static")
    (root / "ws").write_text("static")
    (root.parent / "outside.txt").write_text("outside")
    (root / "link.txt").symlink_to(root.parent / "outside.txt")
    return module_server_factory(config=f'web_root = "{root}"\n')


@pytest.mark.parametrize("path,ctype", [
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/a.css", "text/css; charset=utf-8"),
    ("/m.json", "application/json"),
    ("/avatars/fox.svg", "image/svg+xml"),
    ("/f.woff2", "font/woff2"),
])
def test_content_types_and_cache_headers(web, path, ctype):
    r = web.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == ctype
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["ETag"].startswith('"')
    assert r.headers["Last-Modified"].endswith(" GMT")


def test_if_none_match_gives_304_and_head_has_no_body(web):
    r = web.get("/app.js")
    etag = r.headers["ETag"]
    again = web.get("/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert web.get("/app.js", headers={"If-None-Match": '"other"'}).status_code == 200
    head = web.request("HEAD", "/app.js")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(r.content))


@pytest.mark.parametrize("path", [
    "/missing.js", "/.env", "/link.txt", "/avatars/", "/avatars", "/%2e%2e/outside.txt",
    "/avatars/%2e%2e/%2e%2e/outside.txt", "/..%2foutside.txt", "/a%00.js",
])
def test_missing_hidden_and_outside_paths_are_404(web, path):
    with web.connect() as c:
        c.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        res = c.read_response()
    assert res.status == 404, (path, res)
    assert res.json() == {"message": "Not found"}


def test_raw_dotdot_in_the_request_line_stays_inside(web):
    with web.connect() as c:
        c.send(b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
        res = c.read_response()
    assert res.status == 404
    assert b"root:" not in res.body


def test_api_and_ws_keep_priority(web):
    assert web.get("/api/nothing").json() == {"message": "Not found"}
    assert web.get("/api/nothing").status_code == 404
    assert web.get("/healthz").json() == {"status": "ok"}
    assert web.get("/ws").status_code == 404
    r = web.post("/index.html", data="x")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"


def test_the_repository_web_ui_is_served(server_factory):
    srv = server_factory(config=f'web_root = "{WEB}"\n')
    page = srv.get("/")
    assert page.status_code == 200
    assert '<script type="module" src="js/app.js">' in page.text
    for asset in ("js/app.js", "css/style.css", "favicon.svg"):
        r = srv.get("/" + asset)
        assert r.status_code == 200, asset
        assert r.content == (WEB / asset).read_bytes()
