"""Fixtures of the colorization tests: the LPIPS weights of the set-up step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adacolor.lpips import FETCH_COMMAND, NETS, default_cache_dir


@pytest.fixture(scope="session")
def lpips_weights() -> dict[str, Path]:
    """The converted LPIPS weights, ``{"alex": path, "vgg": path}``, as the set-up step
    (``python -m adacolor.lpips fetch``, run by ``.ci/run``) left them. Tests never download
    them: without them a test is skipped, or fails under ``ADAPRUNE_REQUIRE_DATA=1``."""
    paths = {net: default_cache_dir() / f"{net}.pth" for net in NETS}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        reason = (f"the LPIPS weights are missing ({', '.join(missing)}); fetch them once with "
                  f"`{FETCH_COMMAND}` (the tests never download)")
        if os.environ.get("ADAPRUNE_REQUIRE_DATA") == "1":
            pytest.fail(f"{reason}, and ADAPRUNE_REQUIRE_DATA=1 requires them")
        pytest.skip(reason)
    return paths
