"""Section 4: profile, password, photo."""

import re

import pytest
import requests

from e2e_helpers import (IMAGE_MAGIC, IMAGES, INFO_KEYS, assert_error, make_png, multipart,
                         upload_photo)

SET_PROFILE = "/api/user/set_profile"
SET_PASSWORD = "/api/user/set_password"
SET_PHOTO = "/api/user/set_photo"
PHOTO_RE = re.compile(r"^/api/user/photo/\d+\?v=[^&\s]+$")


@pytest.fixture
def user(srv):
    return srv.create_user()


# ----------------------------------------------------------------------------- info
def test_info_fields(srv, user):
    acct, _, tok, uid = user
    info = srv.info(tok)
    assert set(info) == INFO_KEYS
    assert info["id"] == uid and isinstance(uid, int)
    assert info["account"] == acct
    assert info["role"] == "user"
    assert info["email"] is None and info["phone"] is None
    assert info["photo"] is None or PHOTO_RE.match(info["photo"]), info["photo"]
    assert isinstance(info["nickname"], (str, type(None)))


# ----------------------------------------------------------------------------- set_profile
def test_set_profile_all_fields(srv, user):
    _, _, tok, _ = user
    r = srv.post(SET_PROFILE, tok, json={"nickname": "Zoë the GPU hog",
                                         "email": "zoe@lab.example.org", "phone": "+49 30-1234567"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == INFO_KEYS
    assert body["nickname"] == "Zoë the GPU hog"
    assert body["email"] == "zoe@lab.example.org"
    assert body["phone"] == "+49 30-1234567"
    assert srv.info(tok) == body


@pytest.mark.parametrize("field,value", [
    ("nickname", "N"), ("nickname", "n" * 64), ("nickname", "名前"),
    ("email", "a@b.co"), ("email", "first.last+tag@sub.example.com"),
    ("phone", "12345"), ("phone", "1" * 20), ("phone", "+1-2 3"),
])
def test_set_profile_single_field(srv, user, field, value):
    _, _, tok, _ = user
    before = srv.info(tok)
    r = srv.post(SET_PROFILE, tok, json={field: value})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after[field] == value
    for k in INFO_KEYS - {field}:
        assert after[k] == before[k], k


@pytest.mark.parametrize("field,value", [
    ("nickname", ""), ("nickname", "n" * 65), ("nickname", None),
    ("email", "not-an-email"), ("email", "a@"), ("email", "@b.com"), ("email", "a b@c.com"),
    ("email", ""), ("email", "a@@b.com"),
    ("phone", "1234"), ("phone", "1" * 21), ("phone", "12a45"), ("phone", ""),
    ("phone", "12345#"), ("phone", "123.456"),
])
def test_set_profile_invalid_value(srv, user, field, value):
    _, _, tok, _ = user
    before = srv.info(tok)
    assert_error(srv.post(SET_PROFILE, tok, json={field: value}), 400, contains=field)
    assert srv.info(tok) == before


@pytest.mark.parametrize("field,value", [
    ("nickname", 5), ("email", 5), ("phone", 12345), ("nickname", ["x"]), ("email", {"a": 1}),
    ("phone", True),
])
def test_set_profile_wrong_type(srv, user, field, value):
    _, _, tok, _ = user
    assert_error(srv.post(SET_PROFILE, tok, json={field: value}), 400,
                 f"Field {field} must be a string")


def test_set_profile_null_clears(srv, user):
    _, _, tok, _ = user
    r = srv.post(SET_PROFILE, tok, json={"nickname": "Keep", "email": "x@y.org", "phone": "55555"})
    assert r.status_code == 200, r.text
    r = srv.post(SET_PROFILE, tok, json={"email": None})
    assert r.status_code == 200, r.text
    assert r.json()["email"] is None and r.json()["phone"] == "55555"
    r = srv.post(SET_PROFILE, tok, json={"phone": None})
    assert r.status_code == 200, r.text
    info = srv.info(tok)
    assert info["email"] is None and info["phone"] is None and info["nickname"] == "Keep"


def test_set_profile_empty_object(srv, user):
    _, _, tok, _ = user
    srv.post(SET_PROFILE, tok, json={"nickname": "Same", "email": "s@t.org"})
    before = srv.info(tok)
    r = srv.post(SET_PROFILE, tok, json={})
    assert r.status_code == 200, r.text
    assert r.json() == before
    assert srv.info(tok) == before


@pytest.mark.parametrize("key", ["password", "role", "account", "foo", "id", "photo"])
def test_set_profile_unknown_field(srv, user, key):
    _, _, tok, _ = user
    before = srv.info(tok)
    assert_error(srv.post(SET_PROFILE, tok, json={key: "admin"}), 400, f"Unknown field: {key}")
    # mixed with a valid field: nothing is applied
    assert_error(srv.post(SET_PROFILE, tok, json={"nickname": "Sneaky", key: "admin"}), 400,
                 f"Unknown field: {key}")
    assert srv.info(tok) == before


def test_set_profile_partial_invalid_is_atomic(srv, user):
    _, _, tok, _ = user
    before = srv.info(tok)
    assert_error(srv.post(SET_PROFILE, tok, json={"nickname": "Good", "email": "bad"}), 400,
                 contains="email")
    assert srv.info(tok) == before


def test_set_profile_needs_token(srv):
    assert_error(srv.post(SET_PROFILE, json={"nickname": "x"}), 401, "Token Not Found")


@pytest.mark.parametrize("raw,message", [
    (b"nope", "Invalid JSON body"), (b"[1,2]", "Request body must be a JSON object"),
    (b'"str"', "Request body must be a JSON object"), (b"null", "Request body must be a JSON object"),
    (b'{"nickname": "a"', "Invalid JSON body"),
])
def test_set_profile_bad_json(srv, user, raw, message):
    _, _, tok, _ = user
    assert_error(srv.post(SET_PROFILE, tok, data=raw), 400, message)


# ----------------------------------------------------------------------------- set_password
def test_set_password_ok(srv, user):
    acct, pw, tok, _ = user
    r = srv.post(SET_PASSWORD, tok, json={"old_password": pw, "new_password": "fresh-password-9"})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Password updated"}
    assert_error(srv.login_resp(acct, pw), 401, "Wrong password")
    srv.login(acct, "fresh-password-9")


def test_set_password_wrong_old(srv, user):
    acct, pw, tok, _ = user
    r = srv.post(SET_PASSWORD, tok, json={"old_password": "not-my-password",
                                          "new_password": "fresh-password-9"})
    assert_error(r, 401, "Wrong password")
    srv.login(acct, pw)
    # the token was not invalidated by the failed attempt
    assert srv.get("/api/user/info", tok).status_code == 200


@pytest.mark.parametrize("new", ["short", "", "x" * 7, "x" * 129])
def test_set_password_bad_new(srv, user, new):
    acct, pw, tok, _ = user
    r = srv.post(SET_PASSWORD, tok, json={"old_password": pw, "new_password": new})
    assert_error(r, 400, contains="new_password")
    srv.login(acct, pw)


@pytest.mark.parametrize("body,message", [
    ({"new_password": "fresh-password-9"}, "Missing field: old_password"),
    ({"old_password": "user-password-1"}, "Missing field: new_password"),
    ({"old_password": 1, "new_password": "fresh-password-9"}, "Field old_password must be a string"),
    ({"old_password": "user-password-1", "new_password": None},
     "Field new_password must be a string"),
    ({"old_password": "user-password-1", "new_password": "fresh-password-9", "x": 1},
     "Unknown field: x"),
])
def test_set_password_bad_body(srv, user, body, message):
    acct, pw, tok, _ = user
    assert_error(srv.post(SET_PASSWORD, tok, json=body), 400, message)
    srv.login(acct, pw)


# ----------------------------------------------------------------------------- set_photo
def _fetch_photo(srv, url):
    return requests.get(srv.url(url), timeout=15)  # no token


@pytest.mark.parametrize("kind", sorted(IMAGES))
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_photo_upload_roundtrip(srv, user, kind, method):
    _, _, tok, uid = user
    data, ctype = IMAGES[kind]
    # the file name lies: recognition is by magic bytes
    r = upload_photo(srv, tok, data, filename="upload.bin", method=method)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == INFO_KEYS
    url = body["photo"]
    assert isinstance(url, str) and PHOTO_RE.match(url), url
    assert srv.info(tok)["photo"] == url
    g = _fetch_photo(srv, url)
    assert g.status_code == 200
    assert g.headers["Content-Type"].split(";")[0].strip() == ctype
    assert g.content == data


def test_photo_multipart_field_with_file(srv, user):
    _, _, tok, _ = user
    data, ctype = IMAGES["gif"]
    r = upload_photo(srv, tok, data, header_with_file=False)
    assert r.status_code == 200, r.text
    g = _fetch_photo(srv, r.json()["photo"])
    assert g.content == data and g.headers["Content-Type"].startswith(ctype)


def test_photo_url_changes_on_new_upload(srv, user):
    _, _, tok, _ = user
    r1 = upload_photo(srv, tok, make_png(3, 3, (1, 2, 3)))
    r2 = upload_photo(srv, tok, make_png(4, 4, (4, 5, 6)))
    assert r1.status_code == 200 and r2.status_code == 200
    u1, u2 = r1.json()["photo"], r2.json()["photo"]
    assert u1 != u2
    g = _fetch_photo(srv, u2)
    assert g.content == make_png(4, 4, (4, 5, 6))


def test_photo_near_limit_roundtrip(srv, user):
    _, _, tok, _ = user
    data = make_png() + b"\0" * (2 * 1024 * 1024 - 4096)  # trailing bytes after IEND
    r = upload_photo(srv, tok, data)
    assert r.status_code == 200, r.text[:300]
    g = _fetch_photo(srv, r.json()["photo"])
    assert g.content == data


def test_photo_not_an_image(srv, user):
    _, _, tok, _ = user
    before = srv.info(tok)
    r = upload_photo(srv, tok, b"hello, I am a text file\n" * 10, filename="x.png",
                     ctype="image/png")
    assert_error(r, 415, "Unsupported image type")
    for fake in [b"", b"\x89PN", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"<svg xmlns='x'/>",
                 b"BM" + b"\0" * 100]:
        r = upload_photo(srv, tok, fake, filename="x.png", ctype="image/png")
        assert_error(r, 415, "Unsupported image type")
    assert srv.info(tok) == before


def test_photo_not_multipart(srv, user):
    _, _, tok, _ = user
    png = make_png()
    for ctype in ["image/png", "application/json", "application/octet-stream", None]:
        headers = {"with_file": "true"}
        if ctype:
            headers["Content-Type"] = ctype
        r = srv.post(SET_PHOTO, tok, data=png, headers=headers)
        assert_error(r, 415)


def test_photo_too_large(srv, user):
    _, _, tok, _ = user
    before = srv.info(tok)
    data = make_png() + b"\0" * (2 * 1024 * 1024 + 1024)
    r = upload_photo(srv, tok, data)
    assert_error(r, 413)
    assert srv.info(tok) == before
    assert srv.get("/healthz").status_code == 200


def test_photo_truncated_multipart(srv, user):
    _, _, tok, _ = user
    before = srv.info(tok)
    body, ct = multipart([("file", "a.png", "image/png", make_png())])
    for cut in [body[: len(body) // 2], body[:-10], body[:40]]:
        r = srv.post(SET_PHOTO, tok, data=cut, headers={"with_file": "true", "Content-Type": ct})
        assert_error(r, 400)
    # multipart without a "file" part
    body2, ct2 = multipart([("other", "a.png", "image/png", make_png())])
    r = srv.post(SET_PHOTO, tok, data=body2, headers={"with_file": "true", "Content-Type": ct2})
    assert_error(r, 400, contains="file")
    # multipart content type without boundary
    r = srv.post(SET_PHOTO, tok, data=body, headers={"with_file": "true",
                                                      "Content-Type": "multipart/form-data"})
    assert r.status_code in (400, 415), r.text
    assert srv.info(tok) == before


def test_avatars_list(srv, user):
    _, _, tok, _ = user
    r = srv.get("/api/user/avatars", tok)
    assert r.status_code == 200, r.text
    names = r.json()
    assert isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)


def test_photo_preset(srv, user):
    _, _, tok, _ = user
    names = srv.get("/api/user/avatars", tok).json()
    for name in names[:3]:
        r = srv.post(SET_PHOTO, tok, headers={"with_file": "false", "file": name})
        assert r.status_code == 200, (name, r.text)
        url = r.json()["photo"]
        assert isinstance(url, str) and url.startswith("/api/user/photo/"), url
        g = _fetch_photo(srv, url)
        assert g.status_code == 200
        ct = g.headers["Content-Type"].split(";")[0].strip()
        assert ct.startswith("image/"), ct
        if ct in IMAGE_MAGIC:
            assert g.content.startswith(IMAGE_MAGIC[ct])
        assert len(g.content) > 0


def test_photo_preset_via_multipart_fields(srv, user):
    _, _, tok, _ = user
    name = srv.get("/api/user/avatars", tok).json()[0]
    body, ct = multipart([("with_file", None, None, b"false"), ("file", None, None, name.encode())])
    r = srv.request("PUT", SET_PHOTO, tok, data=body, headers={"Content-Type": ct})
    assert r.status_code == 200, r.text
    assert r.json()["photo"].startswith("/api/user/photo/")


def test_photo_preset_unknown(srv, user):
    _, _, tok, _ = user
    before = srv.info(tok)
    got = {}
    for bad in ["no-such-avatar", "../../etc/passwd", "", None]:
        headers = {"with_file": "false"}
        if bad is not None:
            headers["file"] = bad
        r = srv.post(SET_PHOTO, tok, headers=headers)
        assert_error(r, 400)
        got[bad] = r.json()["message"]
    assert srv.info(tok) == before
    # the contract: a 400 message names the field ("file")
    unnamed = {k: v for k, v in got.items() if "file" not in v}
    assert not unnamed, f"400 messages that do not name the field 'file': {unnamed}"


@pytest.mark.parametrize("value", [None, "yes", "TRUE1", "1", ""])
def test_photo_with_file_invalid(srv, user, value):
    _, _, tok, _ = user
    headers = {"file": "whatever"}
    if value is not None:
        headers["with_file"] = value
    r = srv.post(SET_PHOTO, tok, headers=headers)
    assert_error(r, 400, contains="with_file")


def test_photo_needs_token(srv):
    r = upload_photo(srv, None, make_png())
    assert_error(r, 401, "Token Not Found")


def test_photo_not_found(srv):
    assert_error(srv.get("/api/user/photo/99999999?v=abc"), 404, "Photo not found")
    assert_error(srv.get("/api/user/photo/99999999"), 404, "Photo not found")
