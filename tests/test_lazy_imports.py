"""Each command imports only what it uses: measured in a fresh interpreter, as a user's shell starts one.

``--help`` imports every command module (build_parser), so those modules must stay light; asking a server
(``--server URL``) needs neither a model nor LanceDB; the feature packages defer their heavy dependencies.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

#: what no light command should load (a model runtime, the store, the server, generators, speech, plots)
HEAVY = ("torch", "transformers", "open_clip", "timm", "onnxruntime", "lancedb", "pyarrow", "fastapi", "uvicorn",
         "diffusers", "faster_whisper", "ctranslate2", "matplotlib")

_PROBE = """
import json, sys
{body}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""


def _imported(body: str) -> set[str]:
    """Top-level packages imported by a fresh interpreter after running ``body``."""
    out = subprocess.run([sys.executable, "-c", _PROBE.format(body=body)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _main(*argv: str) -> str:
    return f"""
import contextlib, io
from polymodal.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main({list(argv)!r})
    except SystemExit as exc:
        code = exc.code
assert code == 0, code
"""


@pytest.mark.parametrize("argv", [("--help",), ("search", "--help"), ("serve", "--help"), ("index", "--help")])
def test_help_imports_no_heavy_package_nor_numpy(argv):
    loaded = _imported(_main(*argv))
    assert not loaded & {*HEAVY, "numpy", "PIL"}, loaded & {*HEAVY, "numpy", "PIL"}


@pytest.fixture
def stub_server() -> Iterator[str]:
    """A stand-in for `polymodal serve` answering every search with no hits: what the client imports is the
    question here, not what the server finds."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"hits": [], "k": 10, "offset": 0, "next_offset": None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_search_over_a_server_loads_no_model_and_no_store(stub_server):
    loaded = _imported(_main("search", "a cat", "--server", stub_server, "--json"))
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize("module", ["polymodal.library", "polymodal.library.types", "polymodal.server",
                                    "polymodal.speech", "polymodal.generation", "polymodal.video", "polymodal.eval",
                                    "polymodal.zeroshot", "polymodal.cli.remote"])
def test_packages_defer_their_heavy_dependencies(module):
    loaded = _imported(f"import {module}")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_hit_types_do_not_open_the_library_package():
    """``--server`` hits are ``library.types.Hit``: importing them must not import the store and the indexer."""
    out = subprocess.run([sys.executable, "-c", "import sys, polymodal.library.types; "
                          "print('polymodal.library.api' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
