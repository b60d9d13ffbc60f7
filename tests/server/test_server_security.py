"""Attacks, each refused with a 4xx and without reading a file outside the library: path traversal in every
form, symlinks and swapped files, foreign Host headers, missing or wrong tokens, oversized and malformed
uploads. Also: the bind rules, and no token in the logs."""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
from pathlib import Path

import pytest
from PIL import Image
from server_helpers import TOKEN, ids_by_name

from polymodal.errors import ServerConfigError


def _raw_get(port: int, target: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """A GET with the request target sent byte for byte (clients normalise '../' before sending)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


TRAVERSALS = [
    "/api/items/../../../../etc/passwd", "/api/items/..%2F..%2F..%2Fetc%2Fpasswd/original",
    "/api/items/%2Fetc%2Fpasswd/original", "/api/items//etc/passwd/original",
    "/api/items/%2e%2e%2f%2e%2e%2fetc/original",
    "/api/items/..%252F..%252Fetc%252Fpasswd/original", "/api/items/..%5C..%5Cetc%5Cpasswd/original",
    "/static/../../../../etc/passwd", "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/static/%2Fetc%2Fpasswd",
    "/api/items/0123456789abcdef%00/original", "/api/similar/..%2F..%2Fetc%2Fpasswd",
    "/api/items/%2Fetc%2Fpasswd/thumbnail", "/v1/images/files/..%2F..%2Fetc%2Fpasswd", "/../../etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_in_every_form_is_refused(live, opened_files, target):
    opened_files["paths"].clear()
    opened_files["on"] = True
    try:
        status, body = _raw_get(live.port, target)
    finally:
        opened_files["on"] = False
    assert 400 <= status < 500, (target, status)
    assert b"root:" not in body and b"Traceback" not in body
    assert not [p for p in opened_files["paths"] if "passwd" in p]


def test_a_search_never_reads_a_path_given_as_a_term(client, opened_files):
    opened_files["paths"].clear()
    opened_files["on"] = True
    try:
        for q in ("/etc/passwd", "1:/etc/passwd", "../../../../etc/passwd"):
            assert client.get("/api/search", params={"all": "true", "q": q}).status_code == 200
        assert client.get("/api/similar//etc/passwd").status_code == 404
        assert client.get("/api/similar/%2Fetc%2Fpasswd").status_code in (400, 404)
    finally:
        opened_files["on"] = False
    assert not [p for p in opened_files["paths"] if "passwd" in p]


@pytest.fixture
def linked_library(tmp_path, photos, lite):
    """A library whose folder holds a symlink to a photo outside it."""
    from polymodal.library import Library
    from polymodal.server import ServerConfig, create_app

    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(photos["coins"], outside / "private.png")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("cat", "rocket", "coffee"):
        shutil.copy(photos[name], folder / photos[name].name)
    # indexed as a plain file, then made a symlink to the same bytes outside: only the roots check can refuse it
    # (whether a scan follows such links is the library's business; the server must hold either way)
    shutil.copy(outside / "private.png", folder / "link.png")
    lib = Library.open(tmp_path / "lib", model=lite)
    lib.add([folder])
    (folder / "link.png").unlink()
    (folder / "link.png").symlink_to(outside / "private.png")
    return create_app(ServerConfig(library=lib.root), library=lib), folder, outside


def _test_client(app, **kw):
    from fastapi.testclient import TestClient

    return TestClient(app, base_url=kw.pop("base_url", "http://127.0.0.1:8000"), **kw)


def test_symlinks_leaving_the_roots_and_swapped_files_are_not_served(linked_library, photos, opened_files):
    app, folder, outside = linked_library
    with _test_client(app) as c:
        found = c.get("/api/search", params={"all": "true", "q": "x", "k": 10}).json()["hits"]
        ids = {Path(h["path"]).name: h["id"] for h in found}
        assert "link.png" in ids
        opened_files["paths"].clear()
        opened_files["on"] = True
        try:
            r = c.get(f"/api/items/{ids['link.png']}/original")
            assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
            # a file inside the roots, re-pointed outside after indexing
            target = folder / photos["cat"].name
            target.unlink()
            target.symlink_to(outside / "private.png")
            assert c.get(f"/api/items/{ids[photos['cat'].name]}/original").status_code == 403
        finally:
            opened_files["on"] = False
        assert not [p for p in opened_files["paths"] if "private.png" in p or str(outside) in p]
        # a file swapped for other bytes in place: served only if it still hashes to the item
        swapped = folder / photos["rocket"].name
        swapped.write_bytes(photos["coffee"].read_bytes())
        r = c.get(f"/api/items/{ids[photos['rocket'].name]}/original")
        assert r.status_code == 404 and "changed since it was indexed" in r.json()["error"]["message"]
        assert c.get(f"/api/items/{ids[photos['coffee'].name]}/original").content == photos["coffee"].read_bytes()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "attacker:80",
                                  "", "[::2]:8000", "192.168.1.5"])
def test_foreign_host_headers_are_refused(live, host):
    status, body = _raw_get(live.port, "/api/search?q=cat", host=host)
    assert status == 400 and b'"bad_host"' in body and b'"hits"' not in body


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost:1234", "[::1]:8000"])
def test_loopback_host_names_are_accepted(live, host):
    assert _raw_get(live.port, "/health", host=host)[0] == 200


def test_non_loopback_bind_needs_a_token(served_library):
    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        with pytest.raises(ServerConfigError, match="without a token"):
            create_app(ServerConfig(library=lib.root, host=host), library=lib)
    with pytest.raises(ServerConfigError, match="shorter than 16"):
        ServerConfig(host="0.0.0.0", token="short").check()


@pytest.fixture(scope="module")
def public_app(served_library):
    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    return create_app(ServerConfig(library=lib.root, host="192.168.1.5", token=TOKEN), library=lib)


@pytest.mark.parametrize("path", ["/health", "/", "/api/search?q=cat", "/api/items/0123456789abcdef/original",
                                  "/docs", "/openapi.json", "/v1/models"])
def test_missing_or_wrong_token_off_loopback_is_401(public_app, path):
    with _test_client(public_app, base_url="http://192.168.1.5:8000") as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
                        {"Authorization": TOKEN}, {"Cookie": "polymodal_token=nope"}):
            r = c.get(path, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.json()["error"]["type"] == "authentication_error"
        assert c.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code in (200, 404)
        assert c.get(path, headers={"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}).status_code == 400


def test_token_is_checked_in_constant_time(monkeypatch, public_app):
    import hmac

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    with _test_client(public_app, base_url="http://192.168.1.5:8000") as c:
        c.get("/health", headers={"Authorization": "Bearer wrong"})
    assert calls


def test_browser_login_sets_a_strict_cookie_and_the_token_stays_out_of_logs(public_app, caplog):
    caplog.set_level(logging.DEBUG)
    with _test_client(public_app, base_url="http://192.168.1.5:8000", follow_redirects=False) as c:
        assert c.get("/?token=wrong").status_code == 401
        r = c.get(f"/?token={TOKEN}")
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert c.get("/api/search", params={"all": "true", "q": "cat"}).status_code == 200  # the cookie now carries it
    server_logs = [r.getMessage() for r in caplog.records if r.name.startswith(("polymodal", "uvicorn"))]
    assert any(m.startswith("GET / 303") for m in server_logs)  # the login is logged, its query is not
    assert not [m for m in server_logs if TOKEN in m or "token=" in m]


@pytest.fixture(scope="module")
def small_limits_app(served_library):
    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    return create_app(ServerConfig(library=lib.root, max_upload_bytes=200_000, max_upload_pixels=1_000_000),
                      library=lib)


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_oversized_uploads_are_413(small_limits_app, photos):
    with _test_client(small_limits_app) as c:
        big = os.urandom(300_000)
        r = c.post("/api/search", files={"image": ("big.png", big, "image/png")})
        assert r.status_code == 413 and "200000 bytes" in r.json()["error"]["message"]
        many = _png(2000, 1000)  # 2 MP in a few kB: only the header says how big it is
        assert len(many) < 200_000
        r = c.post("/api/search", files={"image": ("px.png", many, "image/png")})
        assert r.status_code == 413 and "pixels" in r.json()["error"]["message"]
        r = c.post("/api/classify", files={"image": ("px.png", many, "image/png")}, data={"labels": "a,b"})
        assert r.status_code == 413
        import base64

        r = c.post("/v1/embeddings", json={"input": "data:image/png;base64," + base64.b64encode(many).decode()})
        assert r.status_code == 413
        r = c.post("/v1/embeddings", json={"input": "data:image/png;base64," + base64.b64encode(big).decode()})
        assert r.status_code == 413


def test_decompression_bomb_is_refused_from_the_header(client):
    bomb = _png(10_000, 10_000)  # 100 MP of one grey: ~100 kB on the wire, 100 MB decoded
    r = client.post("/api/search", files={"image": ("bomb.png", bomb, "image/png")})
    assert r.status_code == 413


@pytest.mark.parametrize("payload", [b"", b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, b"<svg></svg>",
                                     b"\xff\xd8\xff\xe0" + b"JFIF" * 10])
def test_malformed_uploads_are_400(client, photos, payload):
    good = ("cat.jpg", photos["cat"].read_bytes(), "image/jpeg")
    r = client.post("/api/search", files=[("image", good), ("image", ("bad.png", payload, "image/png"))])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error" and "Traceback" not in r.text
    # names the upload refused (it said "cannot read image uploaded image")
    assert r.json()["error"]["message"].startswith("cannot read image 'bad.png' (an upload)"), r.text


def test_truncated_image_is_400(client, photos):
    data = photos["rocket"].read_bytes()
    r = client.post("/api/search", files={"image": ("t.jpg", data[: len(data) // 2], "image/jpeg")})
    assert r.status_code == 400 and "cannot read image" in r.json()["error"]["message"]


def test_malformed_requests_are_400(client):
    r = client.post("/api/search", content=b"--x\r\nnot multipart", headers={"Content-Type": "multipart/form-data"})
    assert 400 <= r.status_code < 500
    for path in ("/v1/embeddings", "/api/jobs"):
        r = client.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
        err = r.json()["error"]
        assert r.status_code == 400 and err["type"] == "invalid_request_error", r.text
        # said "1: JSON decode error" with param "1" (the character offset taken for a field name)
        assert err["message"].startswith("the request body is not valid JSON") and err["param"] is None
    r = client.post("/api/jobs", json={"paths": "/etc"})
    assert r.status_code == 400


def test_index_jobs_only_scan_allowed_roots(client, tmp_path):
    for paths in (["/etc"], ["/"], [str(tmp_path)], ["/tmp/../etc"]):
        r = client.post("/api/jobs", json={"paths": paths})
        assert r.status_code == 403, (paths, r.text)
    # relative paths were resolved against the server's working folder, which a client neither sees nor chose
    for paths in (["../../.."], ["photos"], ["~/Pictures"]):
        r = client.post("/api/jobs", json={"paths": paths})
        assert r.status_code == 400 and "not an absolute path" in r.json()["error"]["message"], (paths, r.text)


def test_cors_is_off_unless_configured(client, served_library):
    r = client.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    app = create_app(ServerConfig(library=lib.root, cors_origins=("http://app.example",)), library=lib)
    with _test_client(app) as c:
        r = c.get("/health", headers={"Origin": "http://app.example"})
        assert r.headers["access-control-allow-origin"] == "http://app.example"
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "http://evil.example"}).headers


def test_unexpected_errors_are_a_generic_500(served_library, monkeypatch):
    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    app = create_app(ServerConfig(library=lib.root), library=lib)
    monkeypatch.setattr(app.state.service, "item", lambda i: (_ for _ in ()).throw(RuntimeError("/secret/path")))
    with _test_client(app, raise_server_exceptions=False) as c:
        r = c.get("/api/items/0123456789abcdef")
    assert r.status_code == 500 and "/secret/path" not in r.text and r.json()["error"]["type"] == "server_error"


def test_ids_are_validated_before_lookup(client):
    ids = ids_by_name(client)
    assert client.get(f"/api/items/{ids['cat']}").status_code == 200
    assert client.get(f"/api/items/{ids['cat'].upper()}").status_code == 400
    assert client.get(f"/api/items/{ids['cat']}x").status_code == 400


def test_cors_preflight_passes_the_token_check_but_nothing_else_does(served_library):
    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    app = create_app(ServerConfig(library=lib.root, token=TOKEN, cors_origins=("http://app.example",)), library=lib)
    with _test_client(app) as c:
        pre = c.options("/api/search", headers={"Origin": "http://app.example", "Access-Control-Request-Method": "GET",
                                                "Access-Control-Request-Headers": "authorization"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://app.example"
        assert c.options("/api/search").status_code == 401
        assert c.get("/api/search", params={"q": "cat"}, headers={"Origin": "http://app.example"}).status_code == 401
        ok = c.get("/api/search", params={"all": "true", "q": "cat"}, headers={"Origin": "http://app.example",
                                                                "Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://app.example"


def test_docs_page_gets_its_own_csp(client):
    assert "cdn.jsdelivr.net" in client.get("/docs").headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in client.get("/").headers["content-security-policy"]


def test_oversized_bodies_are_refused_while_streaming(small_limits_app, tmp_path):
    with _test_client(small_limits_app) as c:
        huge = b"x" * 3_000_000
        r = c.post("/api/search", content=huge, headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

        def chunks():  # no Content-Length: chunked transfer, counted as it arrives
            head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
            yield head
            for _ in range(100):
                yield b"\x00" * 65536
            yield b"\r\n--b--\r\n"

        r = c.post("/api/search", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "request body is larger" in r.json()["error"]["message"]
