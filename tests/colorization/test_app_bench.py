"""The app's benchmark command runs end to end and writes what the docs quote (not a timing test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adacolor.app.bench import run_app_bench


@pytest.mark.slow
def test_the_benchmark_writes_one_row_per_model_photo_and_client_count(tmp_path: Path) -> None:
    report = run_app_bench(["adacolvit-t", "icolorit-t"], out=str(tmp_path), image_size=32, photo_sizes=(40,),
                           clients=(1, 2), requests=2, warmup=1, threads=1, policy="random", patch_keep=0.5)
    written = json.loads((tmp_path / "app_bench.json").read_text())
    assert written == json.loads(json.dumps(report))
    rows = written["results"]
    assert [(r["model"], r["clients"], r["requests"]) for r in rows] == [
        ("adacolvit-t", 1, 2), ("adacolvit-t", 2, 2), ("icolorit-t", 1, 2), ("icolorit-t", 2, 2)]
    for row in rows:
        assert 0 < row["server_ms_p50"] <= row["server_ms_p95"]
        assert row["server_ms_p50"] <= row["round_trip_ms_p50"] and row["gflops_mean"] > 0
    assert written["setup"]["server_threads"] == 1 and written["setup"]["policy"]["mode"] == "random"
    table = (tmp_path / "app_bench.md").read_text().splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith("| adacolvit-t |")
