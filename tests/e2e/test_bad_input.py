"""Bad input never changes the database (nor the photo store), never 5xx, never crashes."""

import pytest

from e2e_helpers import make_png, multipart

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def env(srv):
    acct, pw, tok, uid = srv.create_user(nickname="Before", email="b@e.org")
    return {"acct": acct, "pw": pw, "tok": tok, "admin": srv.admin_token()}


def _cases(e):
    tok, adm, acct = e["tok"], e["admin"], e["acct"]
    png = make_png()
    mp_ok, ct = multipart([("file", "a.png", "image/png", png)])
    mp_txt, ct_txt = multipart([("file", "x.png", "image/png", b"just text, not an image\n")])
    big_photo, ct_big = multipart([("file", "a.png", "image/png", png + b"\0" * (2 * MiB + 100))])
    J = {"Content-Type": "application/json"}
    return [
        # (name, method, path, token, kwargs, allowed statuses)
        ("login invalid json", "POST", "/api/auth/login", None, {"data": b"{nope", "headers": J}, {400}),
        ("login array", "POST", "/api/auth/login", None, {"json": [1]}, {400}),
        ("login wrong types", "POST", "/api/auth/login", None,
         {"json": {"account": 1, "password": 2}}, {400}),
        ("login missing", "POST", "/api/auth/login", None, {"json": {}}, {400}),
        ("login unknown field", "POST", "/api/auth/login", None,
         {"json": {"account": acct, "password": e["pw"], "x": 1}}, {400}),
        ("register invalid json", "POST", "/api/auth/register", adm, {"data": b"\xff\x00{", "headers": J},
         {400}),
        ("register wrong types", "POST", "/api/auth/register", adm,
         {"json": {"account": ["newacct"], "password": "password123"}}, {400}),
        ("register missing pw", "POST", "/api/auth/register", adm, {"json": {"account": "newacct1"}},
         {400}),
        ("register unknown field", "POST", "/api/auth/register", adm,
         {"json": {"account": "newacct2", "password": "password123", "is_admin": True}}, {400}),
        ("register bad account", "POST", "/api/auth/register", adm,
         {"json": {"account": "New Acct", "password": "password123"}}, {400}),
        ("register bad role", "POST", "/api/auth/register", adm,
         {"json": {"account": "newacct3", "password": "password123", "role": "god"}}, {400}),
        ("register bad email", "POST", "/api/auth/register", adm,
         {"json": {"account": "newacct4", "password": "password123", "email": "nope"}}, {400}),
        ("register short pw", "POST", "/api/auth/register", adm,
         {"json": {"account": "newacct5", "password": "short"}}, {400}),
        ("register oversized", "POST", "/api/auth/register", adm,
         {"json": {"account": "newacct6", "password": "p" * (MiB + 10)}}, {413}),
        ("register by user", "POST", "/api/auth/register", tok,
         {"json": {"account": "newacct7", "password": "password123"}}, {403}),
        ("profile invalid json", "POST", "/api/user/set_profile", tok, {"data": b"{{", "headers": J},
         {400}),
        ("profile not object", "POST", "/api/user/set_profile", tok, {"json": "nickname"}, {400}),
        ("profile wrong type", "POST", "/api/user/set_profile", tok, {"json": {"nickname": 5}}, {400}),
        ("profile unknown field", "POST", "/api/user/set_profile", tok,
         {"json": {"nickname": "After", "role": "admin"}}, {400}),
        ("profile bad email with good nick", "POST", "/api/user/set_profile", tok,
         {"json": {"nickname": "After", "email": "broken"}}, {400}),
        ("profile bad phone", "POST", "/api/user/set_profile", tok,
         {"json": {"email": None, "phone": "call me"}}, {400}),
        ("profile oversized", "POST", "/api/user/set_profile", tok,
         {"json": {"nickname": "n" * (MiB + 10)}}, {413}),
        ("password missing", "POST", "/api/user/set_password", tok,
         {"json": {"old_password": e["pw"]}}, {400}),
        ("password wrong type", "POST", "/api/user/set_password", tok,
         {"json": {"old_password": e["pw"], "new_password": 12345678}}, {400}),
        ("password short", "POST", "/api/user/set_password", tok,
         {"json": {"old_password": e["pw"], "new_password": "short"}}, {400}),
        ("password unknown field", "POST", "/api/user/set_password", tok,
         {"json": {"old_password": e["pw"], "new_password": "long-enough-1", "a": 1}}, {400}),
        ("password invalid json", "POST", "/api/user/set_password", tok, {"data": b"]"}, {400}),
        ("admin reset unknown field", "POST", f"/api/admin/users/{acct}/password", adm,
         {"json": {"password": "long-enough-1", "b": 2}}, {400}),
        ("admin reset short", "POST", f"/api/admin/users/{acct}/password", adm,
         {"json": {"password": "x"}}, {400}),
        ("admin reset invalid json", "POST", f"/api/admin/users/{acct}/password", adm,
         {"data": b"password=x"}, {400}),
        ("admin reset oversized", "POST", f"/api/admin/users/{acct}/password", adm,
         {"json": {"password": "x" * (MiB + 10)}}, {413}),
        ("photo truncated multipart", "POST", "/api/user/set_photo", tok,
         {"data": mp_ok[: len(mp_ok) - 30], "headers": {"with_file": "true", "Content-Type": ct}},
         {400}),
        ("photo non-image", "POST", "/api/user/set_photo", tok,
         {"data": mp_txt, "headers": {"with_file": "true", "Content-Type": ct_txt}}, {415}),
        ("photo not multipart", "PUT", "/api/user/set_photo", tok,
         {"data": png, "headers": {"with_file": "true", "Content-Type": "image/png"}}, {415}),
        ("photo oversized", "POST", "/api/user/set_photo", tok,
         {"data": big_photo, "headers": {"with_file": "true", "Content-Type": ct_big}}, {413}),
        ("photo unknown preset", "POST", "/api/user/set_photo", tok,
         {"headers": {"with_file": "false", "file": "no-such-preset"}}, {400}),
        ("photo bad with_file", "POST", "/api/user/set_photo", tok,
         {"headers": {"with_file": "maybe"}}, {400}),
        ("delete unknown account", "DELETE", "/api/admin/users/nobody-here", adm, {}, {404}),
        ("delete by user", "DELETE", "/api/admin/users/admin", tok, {}, {403}),
        ("bad token", "POST", "/api/user/set_profile", "x.y.z", {"json": {"nickname": "Hacked"}},
         {401}),
    ]


_CASE_NAMES = [c[0] for c in _cases({"tok": "", "admin": "", "acct": "a", "pw": ""})]


@pytest.mark.parametrize("idx", range(len(_CASE_NAMES)), ids=_CASE_NAMES)
def test_bad_input_leaves_db_unchanged(srv, env, idx):
    name, method, path, token, kw, allowed = _cases(env)[idx]
    before = srv.db_snapshot()
    photos_before = srv.photo_files()
    r = srv.request(method, path, token, **kw)
    assert r.status_code in allowed, f"{name}: got {r.status_code} {r.text[:300]}"
    assert r.json().get("message"), r.text[:300]
    after = srv.db_snapshot()
    if before != after:
        diff_a = [x for x in after if x not in before][:20]
        diff_b = [x for x in before if x not in after][:20]
        pytest.fail(f"{name}: DB changed.\nadded: {diff_a}\nremoved: {diff_b}")
    assert srv.photo_files() == photos_before, f"{name}: photo store changed"
    assert srv.get("/healthz").status_code == 200


def test_user_still_intact(srv, env):
    info = srv.info(env["tok"])
    assert info["nickname"] == "Before" and info["email"] == "b@e.org"
    assert info["phone"] is None
    srv.login(env["acct"], env["pw"])
    for i in range(1, 8):
        r = srv.login_resp(f"newacct{i}", "password123")
        assert r.status_code == 404, (i, r.text)
