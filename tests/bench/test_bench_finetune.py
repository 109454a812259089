"""bench/bench_finetune.py hands its precision and seed options to the fine-tuning run."""

from __future__ import annotations

from pathlib import Path

_BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench(monkeypatch):
    monkeypatch.syspath_prepend(str(_BENCH))
    import bench_finetune

    return bench_finetune


def test_defaults_are_the_fine_tuning_defaults(monkeypatch, tmp_path):
    bench = _bench(monkeypatch)
    from octopi_core.train.finetune import finetune_config

    config = bench.fine_tuning_config(bench.parse_args([]), tmp_path / "run")
    assert config.seed == finetune_config().seed
    assert config.amp is True
    assert config.max_wall_s == 30 * 60
    assert config.output_dir == str(tmp_path / "run")


def test_seed_and_fp32_training_reach_the_run(monkeypatch, tmp_path):
    bench = _bench(monkeypatch)
    args = bench.parse_args(["--seed", "7", "--fp32-training", "--minutes", "2"])
    config = bench.fine_tuning_config(args, tmp_path / "run")
    assert (config.seed, config.amp, config.max_wall_s) == (7, False, 120)
