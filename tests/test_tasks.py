"""Multi-task models: one shared encoder, one decoder per task."""

from __future__ import annotations

import random

import pytest
import torch

from nmt import checkpoint
from nmt.bundle import PreprocessOptions, build, open_bundle
from nmt.config import resolve
from nmt.data import make_batch
from nmt.errors import ConfigError
from nmt.loss import BatchLoss
from nmt.model import build_model
from nmt.runlog import read_metrics
from nmt.train import train
from nmt.translate import load_translator

from conftest import REVERSAL_SYMBOLS


def write_tasks(prefix, n: int, seed: int, tasks=("rev", "cpy", "srt")) -> None:
    """Source symbol sequences with three targets: reversed, copied, sorted."""
    rng = random.Random(seed)
    make = {"rev": lambda s: s[::-1], "cpy": lambda s: s, "srt": sorted}
    files = {side: open(f"{prefix}.{side}", "w") for side in ("sym", *tasks)}
    for _ in range(n):
        seq = [rng.choice(REVERSAL_SYMBOLS) for _ in range(rng.randint(3, 8))]
        files["sym"].write(" ".join(seq) + "\n")
        for task in tasks:
            files[task].write(" ".join(make[task](seq)) + "\n")
    for handle in files.values():
        handle.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    write_tasks(root / "train", 400, seed=0)
    write_tasks(root / "valid", 20, seed=1)
    bundles = {}
    for name, tgt in (("all", ("rev", "cpy", "srt")), ("rev", ("rev",))):
        bundles[name] = root / name
        build(PreprocessOptions(src="sym", tgt=tgt, out=root / name, train=str(root / "train"),
                                valid=str(root / "valid"), tokenizer="word"))
    return bundles


SMALL = {"emb-size": 16, "hidden-size": 32, "dropout": 0.1, "batch-size": 16, "threads": 1,
         "log-every": 5, "lr": 0.003}


def _weights(run):
    return checkpoint.load(checkpoint.step_checkpoints(run)[-1][1])["model"]


def test_one_task_of_many_equals_single_task(corpus, tmp_path):
    settings = {**SMALL, "max-steps": 12, "valid-every": 12}
    train(tmp_path / "multi", *resolve({**settings, "data": str(corpus["all"]), "tasks": "rev"}))
    train(tmp_path / "single", *resolve({**settings, "data": str(corpus["rev"])}))
    multi, single = _weights(tmp_path / "multi"), _weights(tmp_path / "single")
    assert multi.keys() == single.keys()
    for key in multi:
        assert torch.equal(multi[key], single[key]), key


def test_task_gradients_stay_in_their_decoder(corpus):
    bundle = open_bundle(corpus["all"])
    model_cfg, _ = resolve(SMALL)
    model = build_model(model_cfg, len(bundle.src_vocab),
                        {t: len(bundle.tgt_vocabs[t]) for t in bundle.tasks})
    loss = BatchLoss(model)
    source = bundle.source("train")
    for task in bundle.tasks:
        model.zero_grad(set_to_none=True)
        batch = make_batch(source, bundle.target("train", task), torch.arange(8).numpy(), task)
        loss_sum, _ = loss(batch.src_tokens, batch.src_lengths, batch.tgt_in, batch.tgt_out, task)
        loss_sum.backward()
        for other, decoder in model.decoders.items():
            grads = [p.grad for p in decoder.parameters()]
            if other == task:
                assert all(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None for g in grads), f"{task} loss reached the {other} decoder"
        assert all(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.encoder.parameters())


def test_resume_keeps_the_task_schedule(corpus, tmp_path):
    base = {**SMALL, "data": str(corpus["all"]), "task-schedule": "temperature",
            "task-temperature": 2.0, "valid-every": 7}
    train(tmp_path / "straight", *resolve({**base, "max-steps": 14}))
    train(tmp_path / "split", *resolve({**base, "max-steps": 7}))
    train(tmp_path / "split", *resolve({**base, "max-steps": 14}), resume=True)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    valid = [r for r in read_metrics(tmp_path / "split" / "metrics.jsonl") if r["kind"] == "valid"]
    assert set(valid[-1]) >= {"rev", "cpy", "srt"}  # per-task validation metrics in the log
    assert {"loss", "bleu", "chrf"} <= set(valid[-1]["cpy"])


def test_unknown_and_auxiliary_tasks_are_refused(corpus, tmp_path):
    run = tmp_path / "run"
    train(run, *resolve({**SMALL, "data": str(corpus["all"]), "tasks": "rev,cpy",
                         "aux-tasks": "cpy", "max-steps": 2, "valid-every": 2}))
    translator = load_translator(run, torch.device("cpu"))
    assert translator.tasks == ("rev",)
    assert list(translator.model.decoders) == ["rev"]  # the auxiliary decoder is not built
    for task in ("srt", "cpy"):
        with pytest.raises(ConfigError) as err:
            translator.check_task(task)
        assert "rev" in str(err.value)
    assert translator.check_task(None) == "rev"


def test_unknown_training_task(corpus, tmp_path):
    with pytest.raises(ConfigError, match="rev"):
        train(tmp_path / "r", *resolve({**SMALL, "data": str(corpus["all"]), "tasks": "cs"}))


def test_cli_task_selection_and_per_task_scores(corpus, tmp_path, runner):
    import json

    from nmt_cli.main import app

    run = tmp_path / "run"
    train(run, *resolve({**SMALL, "data": str(corpus["all"]), "tasks": "rev,cpy", "max-steps": 3,
                         "valid-every": 3}))
    src = corpus["all"] / "valid.src.txt"
    refused = runner.invoke(app, ["translate", "-m", str(run), "-i", str(src), "--task", "srt"])
    assert refused.exit_code == 3
    assert "srt" in refused.stderr and "rev" in refused.stderr and "cpy" in refused.stderr
    unnamed = runner.invoke(app, ["translate", "-m", str(run), "-i", str(src)])
    assert unnamed.exit_code == 3 and "--task" in unnamed.stderr
    refs = [f"{task}={corpus['all'] / f'valid.{task}.txt'}" for task in ("rev", "cpy")]
    scored = runner.invoke(app, ["evaluate", "-m", str(run), "--src", str(src), "--beam", "1",
                                 "--json", "--ref", refs[0], "--ref", refs[1]])
    assert scored.exit_code == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert set(report) == {"rev", "cpy"} and "BLEU" in report["cpy"]


def test_task_settings_are_parsed_once_in_the_config():
    _, cfg = resolve({"tasks": " de, fr ,", "aux-tasks": "fr", "task-weights": "de=2, fr=0.5"})
    assert cfg.task_list == ("de", "fr") and cfg.aux_task_list == ("fr",)
    assert cfg.task_weight_map(cfg.task_list) == {"de": 2.0, "fr": 0.5}
    assert resolve({})[1].task_list == ()  # empty: all of the bundle's
    for bad, message in (("de", "expected TASK=WEIGHT"), ("de=x", "'x' is not a number")):
        with pytest.raises(ConfigError, match=message):  # at resolve, before any work
            resolve({"task-weights": bad})
    with pytest.raises(ConfigError, match="'cs' is not a task; tasks are de, fr"):
        resolve({"task-weights": "cs=1"})[1].task_weight_map(["de", "fr"])
