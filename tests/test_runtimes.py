"""adaprune.runtimes keeps a process alive across OpenVINO models made and freed in any order.

OpenVINO's CPU plugin gives a thread that compiles or runs a model an alternate signal stack of
its own, and a freed model hands back the stack it found, another model's, already freed, when
models are freed in the order they were made. The next signal handled on that thread killed the
process (SIGSEGV): the test suite died this way in CI, on the SIGCHLD of a child process after a
DataLoader with workers had installed its handler."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from adaprune.export import export_onnx
from tests.conftest import tiny_vit

pytest.importorskip("onnx")
pytest.importorskip("openvino")
if not sys.platform.startswith("linux"):
    pytest.skip("sigaltstack is read through Linux's libc here", allow_module_level=True)

_SCRIPT = textwrap.dedent("""
    import ctypes, faulthandler, gc, signal, subprocess, sys
    import numpy as np
    from adaprune.runtimes import load_exported

    faulthandler.enable()  # as pytest does: Python's handlers run on its alternate stack

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    def stack():
        value = StackT()
        assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(value)) == 0
        return value.ss_sp, value.ss_size

    before = stack()
    first = load_exported(sys.argv[1], "openvino", 1)
    first(np.zeros(first.input_shape, np.float32))
    second = load_exported(sys.argv[1], "openvino", 1)
    second(np.zeros(second.input_shape, np.float32))
    assert stack() == before, "a call left the thread on OpenVINO's stack"
    del first; gc.collect()    # freed in the order made: the order that left a freed stack
    del second; gc.collect()
    assert stack() == before, "freeing the models left the thread on another stack"
    handled = []
    signal.signal(signal.SIGCHLD, lambda *args: handled.append(args[0]))
    subprocess.run(["true"], check=True)
    print("alive", len(handled) > 0)
""")


def test_openvino_models_freed_in_any_order_leave_signal_handling_intact(tmp_path):
    path = export_onnx(tiny_vit(), tmp_path / "vit.onnx", torch.randn(1, 4, 32, 32))
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip() == "alive True"
