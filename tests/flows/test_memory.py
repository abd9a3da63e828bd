"""Memory stays flat across many files: warm workers do not grow, and neither does the flow process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf

from tasks.catalog.walk import walk_library
from tasks.features.workers import AnalysisPool

N_WARM, N_MORE = 36, 216


def _small_library(root: Path, n: int, seed: int = 0) -> list[dict]:
    """``n`` one-second wav files, each a different tone with a tremolo (22.05 kHz mono)."""
    rng = np.random.default_rng(seed)
    t = np.arange(22050) / 22050
    for i in range(n):
        y = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
        folder = root / f"{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"f{i:04d}.wav", y.astype(np.float32), 22050)
    return walk_library(root).files.sort("path").to_dicts()


def _rss_mb(pids: set[int]) -> float:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 2**20


@pytest.mark.slow
def test_worker_memory_is_flat_over_hundreds_of_files(tmp_path):
    """After a warm-up, 216 more files through two warm workers leave their RSS within 15 MB (a leak of
    70 kB per file would show 15 MB)."""
    items = _small_library(tmp_path, N_WARM + N_MORE)
    with AnalysisPool(2) as pool:
        for i in range(0, N_WARM, 12):
            assert {r["status"] for r in pool.analyze_batch(items[i : i + 12])} == {"analyzed"}
        workers = set(pool.worker_pids())
        warm = _rss_mb(workers)
        for i in range(N_WARM, N_WARM + N_MORE, 12):
            assert {r["status"] for r in pool.analyze_batch(items[i : i + 12])} == {"analyzed"}
        assert set(pool.worker_pids()) == workers and len(workers) == 2  # the same two warm processes
        after = _rss_mb(workers)
    assert warm > 100.0  # two live workers with numpy, scipy, soxr and the features imported
    print(f"worker RSS {warm:.1f} -> {after:.1f} MB")
    assert after - warm < 15.0, (warm, after)


@pytest.mark.slow
def test_flow_process_memory_is_flat_over_many_batches(prefect_harness, tmp_path):
    """The flow keeps at most a window of batches in flight and drops each batch's rows once stored: a second
    run of 20 batches leaves the flow process's RSS within 20 MB of where a 4-batch run left it."""
    from flows.analyze import analyze_library

    first, second = tmp_path / "first", tmp_path / "second"
    _small_library(first, 16, seed=1)
    _small_library(second, 80, seed=2)
    me = psutil.Process()
    catalog = tmp_path / "c.duckdb"
    summary = analyze_library(str(first), catalog_path=str(catalog), workers=1, batch_size=4)
    assert summary["analyzed"] == 16
    warm = me.memory_info().rss / 2**20
    summary = analyze_library(str(second), catalog_path=str(catalog), workers=1, batch_size=4)
    assert summary["analyzed"] == 80
    after = me.memory_info().rss / 2**20
    print(f"flow process RSS {warm:.1f} -> {after:.1f} MB")
    assert after - warm < 20.0, (warm, after)
