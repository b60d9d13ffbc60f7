"""``index --threads N`` and ``index --nice``: how much of the machine an index run takes (polymodal.machine)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from polymodal.cli import main
from polymodal.machine import ENV


def test_the_thread_cap_reaches_onnx_runtime_and_the_decoders(lite_encoder, monkeypatch):
    from polymodal.models.bundle import BundleEncoder
    from polymodal.models.runtime import OnnxRunner

    network = lite_encoder.folder / "text.onnx"
    monkeypatch.delenv(ENV, raising=False)
    free = OnnxRunner(network).session.get_session_options().intra_op_num_threads
    assert free != 1  # positive control: uncapped, onnxruntime picks its own (0: one per core)
    monkeypatch.setenv(ENV, "1")
    assert OnnxRunner(network).session.get_session_options().intra_op_num_threads == 1
    assert OnnxRunner(network, threads=4).session.get_session_options().intra_op_num_threads == 1
    assert BundleEncoder(lite_encoder.folder, announce=False).decode_workers == 1


def test_threads_must_be_positive(tmp_path, photo_dir, capsys):
    code = main(["index", str(photo_dir), "-L", str(tmp_path / "lib"), "--threads", "0"])
    assert code == 4 and "--threads must be at least 1" in capsys.readouterr().err


@pytest.mark.slow  # a niced child indexing 8 photos: seconds on a quiet machine, far longer beside busy work
@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="ioprio syscall numbers known here")
def test_nice_indexes_at_low_cpu_and_idle_io_priority(tmp_path, photo_dir):
    # in a child process: a lowered priority cannot be raised again without privileges
    probe = (
        "import ctypes, json, os, platform, sys\n"
        "from polymodal.cli import main\n"
        f"code = main(['index', {str(photo_dir)!r}, '-L', {str(tmp_path / 'lib')!r}, '--nice', '--threads', '1',"
        " '--json'])\n"
        "number = {'x86_64': 252, 'aarch64': 31}[platform.machine()]  # ioprio_get\n"
        "prio = ctypes.CDLL(None).syscall(number, 1, 0)\n"
        "print(json.dumps({'code': code, 'nice': os.getpriority(os.PRIO_PROCESS, 0), 'io_class': prio >> 13,"
        " 'threads': os.environ.get('POLYMODAL_THREADS')}), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    facts = json.loads(res.stderr.strip().splitlines()[-1])
    started = os.getpriority(os.PRIO_PROCESS, 0)  # a child starts at its parent's (a CI runner may be niced)
    assert facts == {"code": 0, "nice": max(10, started), "io_class": 3, "threads": "1"}, res.stderr
    assert json.loads(res.stdout)["added"] == 8
    # positive control: the same probe without --nice runs at the priority it was started with
    (tmp_path / "empty").mkdir()
    plain_probe = probe.replace(" '--nice',", "").replace(str(tmp_path / "lib"), str(tmp_path / "lib2"))
    plain_probe = plain_probe.replace(repr(str(photo_dir)), repr(str(tmp_path / "empty")))  # nothing to embed
    plain = subprocess.run([sys.executable, "-c", plain_probe], capture_output=True, text=True, timeout=300)
    facts = json.loads(plain.stderr.strip().splitlines()[-1])
    assert facts["nice"] == started and facts["io_class"] != 3, plain.stderr
