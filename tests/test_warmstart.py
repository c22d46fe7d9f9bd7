"""Fine-tuning (`nmt train --init-from`): the init run's weights, a fresh optimizer and step count,
checked architecture and vocabularies, and a resume that does not apply the init again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from nmt import checkpoint
from nmt.bundle import PreprocessOptions, build
from nmt.config import resolve
from nmt.errors import ConfigError
from nmt.runlog import read_metrics
from nmt.train import Trainer, train
from nmt_cli.main import app

from conftest import write_reversal

TRAINING = {"lr": 0.003, "batch-size": 32, "threads": 1, "log-every": 10, "patience": 0}


def _bundle(
    root: Path, name: str, tgt: str = "rev", copy: bool = True, n: int = 0, extra: str = ""
) -> Path:
    """A word-level bundle beside the reversal bundle's raw files: the copy task on the same
    sentences (so the same vocabularies, ids included), or `n` new reversal pairs; `extra`: a
    training line added on both sides."""
    raw = root / name
    raw.mkdir()
    for split, seed in (("train", 7), ("valid", 8)):
        if copy:
            lines = (root / f"{split}.sym").read_text()
            (raw / f"{split}.sym").write_text(lines)
            (raw / f"{split}.{tgt}").write_text(lines)  # the target is the source: copying
        else:
            write_reversal(raw / split, n, seed)
    for side in ("sym", tgt):
        with open(raw / f"train.{side}", "a") as handle:
            handle.write(extra + "\n" if extra else "")
    build(
        PreprocessOptions(
            src="sym",
            tgt=(tgt,),
            out=raw / "bundle",
            train=str(raw / "train"),
            valid=str(raw / "valid"),
            tokenizer="word",
        )
    )
    return raw / "bundle"


@pytest.fixture(scope="module")
def copy_bundle(reversal_bundle: Path) -> Path:
    """The second toy task: copy the sequence, on the reversal task's sentences."""
    return _bundle(reversal_bundle.parent, "copy")


def _model(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["model"]


def _fine_tune(init: Path, data: Path, out: Path, *options: str) -> list[str]:
    """`nmt train --init-from INIT --data DATA --out OUT OPTIONS...` as CLI arguments."""
    return ["train", "--init-from", str(init), "--data", str(data), "--out", str(out), *options]


def test_fine_tuning_moves_the_model_and_keeps_its_shapes(
    reversal_run, copy_bundle, tmp_path, runner
):
    """No model option is given: the architecture (emb 32, hidden 64, not the defaults) comes
    from the init run; the step count starts again; the loss on the new task falls."""
    run = tmp_path / "ft"
    args = [f"--{k}={v}" for k, v in {**TRAINING, "max-steps": 100, "valid-every": 100}.items()]
    result = runner.invoke(app, _fine_tune(reversal_run, copy_bundle, run, *args))
    assert result.exit_code == 0, result.stderr
    assert "fine-tuning from" in result.stderr

    init, tuned = _model(reversal_run / "best.pt"), _model(run / "best.pt")
    assert {k: v.shape for k, v in init.items()} == {k: v.shape for k, v in tuned.items()}
    assert all(not torch.equal(init[k], tuned[k]) for k in init)
    saved = checkpoint.load(run / "best.pt", keys=checkpoint.RESUME_KEYS)
    assert saved["step"] == 100 and saved["model_config"]["hidden_size"] == 64
    assert "init-from" in (run / "config.toml").read_text()

    records = read_metrics(run / "metrics.jsonl")
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert [r["step"] for r in records if r["kind"] == "train"][0] == 10  # a fresh step count
    assert losses[-1] < 0.8 * losses[0], losses


def test_warm_start_loads_the_init_weights(reversal_run, copy_bundle, tmp_path):
    """Before any update, the model is the init run's best model, tensor for tensor."""
    model_cfg, train_cfg = resolve(
        checkpoint.load(reversal_run / "best.pt")["model_config"],
        {"data": str(copy_bundle), "init-from": str(reversal_run)},
    )
    trainer = Trainer(tmp_path / "ft", model_cfg, train_cfg)
    trainer.warm_start()
    init = _model(reversal_run / "best.pt")
    loaded = trainer.model.state_dict()
    assert loaded.keys() == init.keys()
    assert all(torch.equal(loaded[k], init[k]) for k in init)


def test_resume_of_a_fine_tuning_run_does_not_apply_the_init_again(
    reversal_run, copy_bundle, tmp_path
):
    """A fine-tuning run stopped at step 10 and resumed to 20 ends with the weights of one run
    straight to 20, although the init checkpoint (here a .pt file) is gone by then."""
    init = tmp_path / "init.pt"
    shutil.copy(reversal_run / "best.pt", init)
    model_settings = checkpoint.load(init)["model_config"]
    settings = {**TRAINING, "data": str(copy_bundle), "init-from": str(init), "valid-every": 10}
    train(tmp_path / "straight", *resolve(model_settings, {**settings, "max-steps": 20}))
    train(tmp_path / "stopped", *resolve(model_settings, {**settings, "max-steps": 10}))
    init.unlink()
    summary = train(
        tmp_path / "stopped", *resolve(model_settings, {**settings, "max-steps": 20}), resume=True
    )
    assert summary["step"] == 20
    straight = _model(checkpoint.step_path(tmp_path / "straight", 20))
    resumed = _model(checkpoint.step_path(tmp_path / "stopped", 20))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_map_vocab_carries_the_rows_of_shared_tokens(reversal_run, reversal_bundle, tmp_path):
    """With --map-vocab a bundle with other vocabularies (other order, two new tokens) gets the
    init model's embedding and output rows for every token the two share, looked up by spelling;
    the new tokens keep their fresh rows."""
    other = _bundle(
        reversal_bundle.parent, f"map-{tmp_path.name}", copy=False, n=300, extra="new1 a new2"
    )
    init_state = checkpoint.load(reversal_run / "best.pt", keys=checkpoint.INFERENCE_KEYS)
    settings = {"data": str(other), "init-from": str(reversal_run), "map-vocab": True}
    messages: list[str] = []
    trainer = Trainer(
        tmp_path / "ft",
        *resolve(init_state["model_config"], settings),
        report=lambda record: messages.append(record["message"]),
    )
    fresh = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.warm_start()
    assert "source: 23 of 25 tokens" in messages[0] and "target (rev): 23 of 25" in messages[0]

    from nmt.bundle import open_bundle

    init_vocab = open_bundle(reversal_bundle).src_vocab
    new_vocab = trainer.bundle.src_vocab
    assert new_vocab != init_vocab and len(new_vocab) == len(init_vocab) + 2
    loaded = trainer.model.state_dict()
    for key, vocab in (
        ("encoder.embeddings.weight", new_vocab),
        ("decoders.rev.embeddings.weight", trainer.bundle.tgt_vocabs["rev"]),
        ("decoders.rev.out_proj.weight", trainer.bundle.tgt_vocabs["rev"]),
        ("decoders.rev.out_proj.bias", trainer.bundle.tgt_vocabs["rev"]),
    ):
        old_vocab = open_bundle(reversal_bundle).tgt_vocabs["rev"] if "dec" in key else init_vocab
        for i in range(len(vocab)):
            token = vocab.token(i)
            if token in old_vocab:
                assert torch.equal(loaded[key][i], init_state["model"][key][old_vocab.index(token)])
            else:
                assert token.startswith("new") and torch.equal(loaded[key][i], fresh[key][i])
    assert torch.equal(
        loaded["encoder.rnn.weight_hh_l0"], init_state["model"]["encoder.rnn.weight_hh_l0"]
    )


def test_other_vocabularies_are_refused(reversal_run, reversal_bundle, tmp_path, runner):
    """A bundle built from other sentences orders its tokens differently: a one-line
    ConfigError names both sides, and no run directory is made."""
    other = _bundle(reversal_bundle.parent, f"other-{tmp_path.name}", copy=False, n=300)
    run = tmp_path / "ft"
    result = runner.invoke(app, _fine_tune(reversal_run, other, run, "--max-steps", "5"))
    assert result.exit_code == ConfigError.exit_code, result.stderr
    assert "the source vocabulary" in result.stderr and "target (rev)" in result.stderr
    assert "first differing at id" in result.stderr and "--map-vocab" in result.stderr
    assert "Traceback" not in result.stderr and not run.exists()


def test_a_task_the_init_model_lacks_is_refused(reversal_run, reversal_bundle, tmp_path, runner):
    other = _bundle(reversal_bundle.parent, f"task-{tmp_path.name}", tgt="cpy")
    result = runner.invoke(app, _fine_tune(reversal_run, other, tmp_path / "ft"))
    assert result.exit_code == ConfigError.exit_code
    assert "no decoder for task(s) cpy" in result.stderr and "its tasks: rev" in result.stderr


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_a_model_setting_against_the_init_run_is_refused(
    reversal_run, copy_bundle, tmp_path, runner, where
):
    """The architecture is the init run's: another hidden size, from the command line or a
    --config file, is an error naming it; the init run's own value is accepted."""
    args = _fine_tune(reversal_run, copy_bundle, tmp_path / "ft")
    if where == "config file":
        (tmp_path / "c.toml").write_text("hidden-size = 128\n")
        args += ["--config", str(tmp_path / "c.toml")]
    else:
        args += ["--hidden-size", "128"]
    result = runner.invoke(app, args)
    assert result.exit_code == ConfigError.exit_code
    assert "hidden-size 128 (the init model's: 64)" in result.stderr
    own = ("--hidden-size", "64", "--max-steps", "1", "--valid-every", "1", "--threads", "1")
    same = runner.invoke(app, _fine_tune(reversal_run, copy_bundle, tmp_path / "ft", *own))
    assert same.exit_code == 0, same.stderr
