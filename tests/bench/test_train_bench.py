"""``textsae bench train``: every side trains from the same weights, picks the same latents, and the JSON has its shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from textsae.bench import training
from textsae.bench.training import SIDES, TrainShape, run_train_bench, sparsify_available
from textsae.cli.main import main
from textsae.errors import UserError

TINY = [TrainShape("dense", 24, 64, 4, 32), TrainShape("sparse", 200, 64, 4, 32, nnz=12)]
CASE_KEYS = {"input", "d_in", "n_latents", "k", "batch", "vec_per_s", "ratio_vs_sparsify", "ratio_vs_plain"}


@pytest.fixture(autouse=True)
def _small_bandwidth_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 256 kB probe instead of two buffers of at least 256 MB: the tests check the arithmetic, not the machine."""
    monkeypatch.setattr(training, "probe_floats", lambda device: 1 << 16)


def _sides_run() -> list[str]:
    return [side for side in SIDES if side != "sparsify" or sparsify_available()]


def test_every_side_agrees_and_trains() -> None:
    result = run_train_bench(TINY, rounds=2, steps=1).to_json()  # the JSON `--json` prints
    assert [case["input"] for case in result["cases"]] == ["dense", "sparse"]
    for shape, case in zip(TINY, result["cases"]):
        assert CASE_KEYS | {"ratio_vs_plain_sparse"} <= set(case)
        assert case["same_active_latents"] == {side: 1.0 for side in _sides_run() if side != "textsae"}
        for side in SIDES:
            rate = case["vec_per_s"][side]
            assert (rate is not None and rate > 0) == (side in _sides_run())
        spread = case["ratio_spread"]["ratio_vs_plain"]
        assert spread["min"] <= case["ratio_vs_plain"] == spread["median"] <= spread["max"]
        for side in _sides_run():  # the FLOPs of a step at the measured rate, over the measured matmul peak
            expected = (
                training.topk_step_flops(shape) * case["vec_per_s"][side] / shape.batch / 1e9 / case["matmul_gflops"]
            )
            assert case["flop_utilisation"][side] == pytest.approx(expected), side
        roofline = case["roofline"]
        assert case["memory_gb_per_s"] > 0
        assert roofline["vec_per_s"] == pytest.approx(
            shape.batch * case["memory_gb_per_s"] * 1e9 / roofline["bytes_per_step"]
        )
        assert roofline["fraction"]["textsae"] == pytest.approx(case["vec_per_s"]["textsae"] / roofline["vec_per_s"])


def test_rates_ratios_and_flop_utilisation_follow_the_timed_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """With fixed seconds per side and round, every number of a case is known: vec/s is batch / seconds (median over
    rounds), a ratio is the median of the per-round ratios, FLOP utilisation is the step's FLOPs at that rate over the
    matmul peak, the roofline is the batch over the time the step's byte floor takes at the measured bandwidth."""
    timed: list[str] = []
    real_build = training._build_sides

    def build(*args, **kwargs):  # type: ignore[no-untyped-def]
        sides = real_build(*args, **kwargs)
        for side in sides:
            side.step = lambda x, side=side, step=side.step: (timed.append(side.name), step(x))[1]
        return sides

    seconds = {"textsae": iter([1.0, 2.0, 4.0]), "plain": iter([2.0] * 3), "plain_sparse": iter([4.0] * 3)}

    def fake_seconds(fn, repeats, device):  # type: ignore[no-untyped-def]
        timed.clear()
        fn()
        return next(seconds[timed[-1]])

    monkeypatch.setattr(training, "_build_sides", build)
    monkeypatch.setattr(training, "_seconds", fake_seconds)
    monkeypatch.setattr(training, "matmul_gflops", lambda shape, device, dtype=torch.float32: 10.0)
    monkeypatch.setattr(training, "memory_gb_per_s", lambda device: 0.5)
    shape = TINY[1]
    case = run_train_bench([shape], sides=["textsae", "plain", "plain_sparse"], rounds=3, steps=1).cases[0].to_json()
    assert shape.batch == 32 and case["vec_per_s"] == {
        "textsae": 16.0,  # median of 32/1, 32/2, 32/4
        "sparsify": None,
        "plain": 16.0,
        "plain_sparse": 8.0,
    }
    assert (case["ratio_vs_plain"], case["ratio_vs_plain_sparse"], case["ratio_vs_sparsify"]) == (1.0, 2.0, None)
    assert case["ratio_spread"] == {
        "ratio_vs_plain": {"median": 1.0, "min": 0.5, "max": 2.0},
        "ratio_vs_plain_sparse": {"median": 2.0, "min": 1.0, "max": 4.0},
    }
    assert case["matmul_gflops"] == 10.0
    floor = 28 * 2 * shape.d_in * shape.n_latents + 8 * shape.batch * shape.d_in  # 725,600 bytes
    roofline = case["roofline"]
    assert roofline["bytes_per_step"] == floor
    assert roofline["vec_per_s"] == pytest.approx(32 * 0.5e9 / floor)  # batch / (floor / bandwidth)
    assert roofline["ratio_vs_plain"] == pytest.approx(32 * 0.5e9 / floor / 16)
    assert roofline["fraction"] == pytest.approx(
        {"textsae": floor / 1e9, "plain": floor / 1e9, "plain_sparse": floor / 2e9}
    )
    flops = training.topk_step_flops(shape)
    assert case["flop_utilisation"] == pytest.approx(
        {
            "textsae": flops * 16 / 32 / 1e9 / 10,
            "plain": flops * 16 / 32 / 1e9 / 10,
            "plain_sparse": flops * 8 / 32 / 1e9 / 10,
        }
    )


def test_agreement_check_sees_a_side_that_differs() -> None:
    shape = TINY[0]
    sides = training._build_sides(shape, ["textsae", "plain"], torch.device("cpu"), seed=0)
    with torch.no_grad():
        sides[1].params["b_enc"][:8] += 100.0  # these latents now win every row
    x = training.make_batch(shape, 0, torch.device("cpu"))
    assert training._agreement(sides, x)["plain"] == 0.0


def test_each_side_changes_its_weights() -> None:
    """A step is a real training step: the optimiser moves the encoder of every side."""
    shape = TINY[1]
    sides = training._build_sides(shape, _sides_run(), torch.device("cpu"), seed=0)
    x = training.make_batch(shape, 0, torch.device("cpu"))
    for side in sides:
        before = side.active(x).clone()
        for _ in range(30):
            side.step(x)
        weights = {
            "textsae": lambda s: s.sae.W_enc,
            "sparsify": lambda s: s.coder.encoder.weight.T,
            "plain": lambda s: s.params["W_enc"],
            "plain_sparse": lambda s: s.params["W_enc"],
        }[side.name](side)
        assert torch.isfinite(weights).all()
        assert not torch.equal(side.active(x), before), side.name


def test_json_prints_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "train", "--input", "sparse", "--d-in", "300", "--n-latents", "32,64", "--k", "4"]
    code = main([*argv, "--batch", "16", "--nnz", "10", "--rounds", "1", "--steps", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [(c["input"], c["n_latents"], c["k"], c["batch"]) for c in result["cases"]] == [
        ("sparse", 32, 4, 16),
        ("sparse", 64, 4, 16),
    ]
    assert all(set(case) >= CASE_KEYS for case in result["cases"])
    assert result["command"].startswith("textsae ")


def test_table_names_machine_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "train", "--input", "dense", "--d-in", "16", "--n-latents", "32", "--k", "4", "--batch", "8"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| dense | 16 | 32 | 4 | 8 |" in out
    assert "machine:" in out and "command: textsae " in out
    assert "textsae / roofline" in out and "roofline: the speed of a step that moved only" in out


def test_memory_bandwidth_counts_the_three_streams_of_an_in_place_update(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(training, "_seconds", lambda fn, repeats, device: (calls.append(fn()), 0.5)[1])
    assert training.memory_gb_per_s(torch.device("cpu"), repeats=2, n_floats=1000) == 3 * 4 * 1000 / 0.5 / 1e9
    assert len(calls) == 2


def test_the_probe_outgrows_a_large_last_level_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for index, size in enumerate(["48K", "2048K", "1G", "garbage"]):
        (tmp_path / f"index{index}").mkdir()
        (tmp_path / f"index{index}" / "size").write_text(size + "\n")
    assert training._last_level_cache_bytes(tmp_path) == 1 << 30
    assert training._last_level_cache_bytes(tmp_path / "missing") == 0
    monkeypatch.undo()  # the real probe_floats, not the autouse fixture's
    monkeypatch.setattr(training, "_last_level_cache_bytes", lambda: 1 << 30)
    assert training.probe_floats(torch.device("cpu")) == (2 << 30) // 4  # two buffers of twice the cache
    monkeypatch.setattr(training, "_last_level_cache_bytes", lambda: 48 << 20)
    assert training.probe_floats(torch.device("cpu")) == training.PROBE_FLOATS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sides", "textsae,fast"], "unknown ['fast']"),
        (["--n-latents", "1k"], "--n-latents must be ints"),
        (["--k", "99", "--n-latents", "64"], "exceeds --n-latents"),
        (["--input", "sparse", "--d-in", "50", "--nnz", "60"], "--nnz must be in [1, d_in=50]"),
    ],
)
def test_bad_options_name_themselves(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "train", "--rounds", "1", "--steps", "1", "--batch", "8", *argv]) != 0
    assert message in capsys.readouterr().err


def test_sparsify_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "sparsify_available", lambda: False)
    result = run_train_bench(TINY[:1], rounds=1, steps=1)
    assert "pip install --no-deps eai-sparsify" in result.skipped["sparsify"]
    assert result.cases[0].vec_per_s["sparsify"] is None and result.cases[0].ratio_vs_sparsify is None
    with pytest.raises(UserError, match="not installed"):
        run_train_bench(TINY[:1], sides=["textsae", "sparsify"], rounds=1, steps=1)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_bf16_autocast_runs_every_sides_forward_under_it(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[bool]] = {}
    real_autocast = training._Side._autocast

    def autocast(self, x):  # type: ignore[no-untyped-def]
        seen.setdefault(self.name, []).append(self.bf16)
        return real_autocast(self, x)

    monkeypatch.setattr(training._Side, "_autocast", autocast)
    result = run_train_bench(TINY, device=device, rounds=1, steps=1, autocast="bf16")
    assert set(seen) == set(_sides_run()) and all(all(flags) for flags in seen.values())
    assert all(case.autocast == "bf16" and (case.vec_per_s["textsae"] or 0) > 0 for case in result.cases)
    default = run_train_bench(TINY[:1], device=device, rounds=1, steps=1)
    assert default.cases[0].autocast == ("bf16" if device == "cuda" else "none")
    with pytest.raises(UserError, match="--autocast"):
        run_train_bench(TINY[:1], device=device, autocast="fp8")
