"""Optional TensorBoard logging (``train.tensorboard``): the event files hold the numbers of metrics.jsonl."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from vaelab.cli import main
from vaelab.config import ConfigError, load_config
from vaelab.run import build_run
from vaelab.training.callbacks import Checkpoints, TensorBoardLog
from vaelab.training.tensorboard import TensorBoardLogger
from vaelab.training.trainer import Trainer

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
EventAccumulator = event_accumulator.EventAccumulator

NOT_SCALARS = {"step", "split", "source"}


def _events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _scalars(record: dict) -> dict[str, float]:
    """The record's finite numeric scalars, as the logger writes them."""
    out = {}
    for k, v in record.items():
        if k in NOT_SCALARS or isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            continue
        out[f"{record['split']}/{k}"] = float(v)
    return out


def _assert_events_match_metrics(run: Path, acc: EventAccumulator) -> None:
    """Every numeric scalar of metrics.jsonl is a TensorBoard scalar with one value per record, at its step."""
    records = _records(run)
    expected: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for tag, v in _scalars(r).items():
            expected.setdefault(tag, []).append((r["step"], v))
    assert {"train/loss", "train/elbo", "valid/elbo", "valid/rate", "valid/mi", "valid/au", "valid/beta"} <= set(
        expected
    )
    tags = set(acc.Tags()["scalars"])
    assert set(expected) <= tags, set(expected) - tags
    for tag, want in expected.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in want], tag
        for (_, g), (_, w) in zip(got, want, strict=True):
            assert abs(g - w) <= 1e-5 * max(1.0, abs(w)), (tag, g, w)  # float32 in the event file


def test_tensorboard_logs_the_metrics_and_pictures_and_changes_no_number(tiny_config, tmp_path):
    cfg = load_config(tiny_config(train={"epochs": 2, "tensorboard": True}))
    on = tmp_path / "on"
    Trainer(cfg, on).fit()
    acc = _events(on)
    _assert_events_match_metrics(on, acc)
    steps = [r["step"] for r in _records(on) if r["split"] == "valid"]
    assert len(steps) == 2

    latent_dim = cfg.model.latent_dim
    scalars = set(acc.Tags()["scalars"])
    assert {f"valid/kl_unit/{i}" for i in range(latent_dim)} <= scalars
    kl = [r for r in _records(on) if r["split"] == "valid"][-1]["kl_per_dim"]
    assert acc.Scalars("valid/kl_unit/0")[-1].value == pytest.approx(kl[0], rel=1e-5, abs=1e-6)
    assert "valid/kl_per_dim" in acc.Tags()["histograms"]

    images = acc.Tags()["images"]
    assert {"images/reconstructions", "images/prior_samples"} <= set(images)
    recon = acc.Images("images/reconstructions")
    assert [e.step for e in recon] == steps
    h, w = cfg.data.image_shape[-2:]
    assert recon[-1].height == 2 * (h + 1) + 1 and recon[-1].width == 8 * (w + 1) + 1  # 2 rows of 8, 1-px pad

    # the same run without TensorBoard: no tensorboard folder, and the same numbers (pictures use a forked RNG)
    off_cfg = load_config(tiny_config(train={"epochs": 2}))
    assert off_cfg.train.tensorboard is False
    off = tmp_path / "off"
    Trainer(off_cfg, off).fit()
    assert not (off / "tensorboard").exists()
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_time"} for r in rs]  # noqa: E731
    assert strip(_records(on)) == strip(_records(off))
    assert (
        json.loads((on / "summary.json").read_text())["nll_iw"]
        == json.loads((off / "summary.json").read_text())["nll_iw"]
    )


def test_missing_tensorboard_is_a_clear_error(tiny_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    path = tiny_config(train={"tensorboard": True})
    with pytest.raises(ConfigError) as e:
        Trainer(load_config(path), tmp_path / "r")
    assert "train.tensorboard" in str(e.value) and "pip install 'vaelab[tensorboard]'" in str(e.value)
    assert not (tmp_path / "r").exists()

    assert main(["train", str(path), "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert "train.tensorboard" in err and "pip install 'vaelab[tensorboard]'" in err
    assert not (tmp_path / "cli").exists()

    # evaluating a run folder whose config asks for TensorBoard does not need it
    build_run(load_config(path), tmp_path / "ev")


def test_resume_hides_events_logged_after_the_checkpoint(tiny_config, tmp_path):
    """A crash after epoch 2 was logged but before its checkpoint: the resumed run logs epoch 2 again, and the
    event files show each step once, with the numbers of metrics.jsonl."""
    cfg = load_config(tiny_config(train={"epochs": 3, "checkpoint_every_steps": 3, "tensorboard": True}))
    run = tmp_path / "crash"
    trainer = Trainer(cfg, run)
    assert trainer.run.steps_per_epoch == 8
    checkpoints = next(c for c in trainer.callbacks if isinstance(c, Checkpoints))
    tensorboard = next(c for c in trainer.callbacks if isinstance(c, TensorBoardLog))
    real_save = checkpoints.save

    def save(trainer, path):
        if path == trainer.folder.last and trainer.state["step"] == 16:
            raise RuntimeError("crash after logging epoch 2")
        real_save(trainer, path)

    checkpoints.save = save
    with pytest.raises(RuntimeError, match="crash after logging"):
        trainer.fit()
    assert tensorboard.logger is None  # closed by fit's finally (on_train_end)
    assert max(r["step"] for r in _records(run)) == 16
    assert max(e.step for e in _events(run).Scalars("valid/elbo")) == 16

    Trainer(cfg, run, resume=True).fit()  # from the checkpoint at step 15
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    acc = _events(run)
    assert [e.step for e in acc.Scalars("valid/elbo")] == [8, 16, 24]
    assert [e.step for e in acc.Images("images/prior_samples")] == [8, 16, 24]
    _assert_events_match_metrics(run, acc)


def test_a_tensorboard_failure_does_not_stop_the_run(tiny_config, tmp_path, monkeypatch, capsys):
    def broken(self, model, dataset, step):
        raise OSError("no space left on device")

    monkeypatch.setattr(TensorBoardLogger, "_log_image_grids", broken)
    cfg = load_config(tiny_config(train={"epochs": 2, "tensorboard": True}))
    run = tmp_path / "r"
    summary = Trainer(cfg, run).fit()
    assert summary["status"] == "completed"
    err = capsys.readouterr().err
    assert err.count("TensorBoard pictures failed") == 1 and "no space left" in err
    acc = _events(run)
    assert not acc.Tags()["images"]
    _assert_events_match_metrics(run, acc)  # the scalars go on


SENTENCES = ["the cat sees the ball", "a dog likes a house", "my sister sold the red car", "the old man wants it"]


def test_text_models_log_sentences(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, n in (("train.txt", 48), ("valid.txt", 12), ("test.txt", 12)):
        (corpus / name).write_text("\n".join(SENTENCES[i % len(SENTENCES)] for i in range(n)) + "\n")
    data = {
        "seed": 5,
        "data": {"name": "text", "path": str(corpus)},
        "model": {"type": "lstm_vae", "latent_dim": 3, "emb_dim": 8, "hidden_dim": 16},
        "train": {"batch_size": 16, "epochs": 1, "progress": False, "tensorboard": True},
        "eval": {"batch_size": 12, "iw_samples": 2, "iw_chunk": 2},
    }
    path = tmp_path / "text.yaml"
    path.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    Trainer(load_config(path), run).fit()
    acc = _events(run)
    tags = {t.removesuffix("/text_summary") for t in acc.Tags()["tensors"]}  # add_text's tag suffix
    assert {"text/prior_samples", "text/reconstructions"} <= tags
    recon = acc.Tensors("text/reconstructions/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "the cat sees the ball  ->  " in recon
    assert not acc.Tags()["images"]
    _assert_events_match_metrics(run, acc)
