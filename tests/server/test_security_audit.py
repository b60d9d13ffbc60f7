"""Positive controls of the audit hook (``opened_files``) the security tests rely on: they assert that no
path with "passwd" in it was opened while an attack ran, which a hook that sees nothing would also pass. Here
the same hook, switched on the same way, must see a file this process opens and one the live server reads."""

from __future__ import annotations

import socket
from pathlib import Path

from server_helpers import ids_by_name


def _recording(opened_files: dict, work) -> list[str]:
    opened_files["paths"].clear()
    opened_files["on"] = True
    try:
        work()
    finally:
        opened_files["on"] = False
    return list(opened_files["paths"])


def test_the_hook_sees_a_known_file_opened_under_it(opened_files):
    def read_passwd() -> None:
        with open("/etc/passwd", "rb") as fh:
            fh.read(1)

    seen = _recording(opened_files, read_passwd)
    assert [p for p in seen if "passwd" in p], seen  # the very filter the attack tests apply


def test_the_hook_sees_a_file_the_live_server_reads(live, client, opened_files, served_library):
    # The attack tests send their requests to `live`: its opens must reach this process's hook (a server in
    # another process, or one reading through a path the hook misses, would make their check vacuous).
    cat = ids_by_name(client)["cat"]
    reply: dict[str, bytes] = {}

    def fetch_original() -> None:
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
            s.sendall(f"GET /api/items/{cat}/original HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        reply["data"] = data

    seen = _recording(opened_files, fetch_original)
    assert reply["data"].split(b" ", 2)[1] == b"200", reply["data"][:300]
    cat_file = next(p for p in (served_library[1]).iterdir() if p.stem == "cat")
    assert [p for p in seen if Path(p).name == cat_file.name], seen
