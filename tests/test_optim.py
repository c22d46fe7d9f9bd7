import pytest
import torch

from nmt.config import resolve
from nmt.errors import ConfigError
from nmt.optim import LrSchedule, build_optimizer, clip_gradients
from nmt.tasks import TaskSchedule


def test_clipping_bounds_global_norm():
    params = [torch.nn.Parameter(torch.zeros(10)), torch.nn.Parameter(torch.zeros(5))]
    params[0].grad = torch.full((10,), 3.0)
    params[1].grad = torch.full((5,), -4.0)
    before = clip_gradients(params, max_norm=1.0)
    after = torch.sqrt(sum((p.grad**2).sum() for p in params))
    assert before > 10 and abs(float(after) - 1.0) < 1e-5
    params[0].grad = torch.full((10,), 0.01)
    params[1].grad = torch.zeros(5)
    clip_gradients(params, max_norm=1.0)
    assert torch.allclose(params[0].grad, torch.full((10,), 0.01))  # below the bound: untouched


def _opt(**settings):
    _, cfg = resolve(settings)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([param], cfg)
    return optimizer, LrSchedule(optimizer, cfg, horizon=cfg.max_steps or 1)


def test_warmup_then_decay():
    _, sched = _opt(schedule="warmup", lr=1.0, warmup_steps=10, min_lr=0.0)
    lrs = []
    for step in (1, 5, 10, 40):
        sched.step(step)
        lrs.append(sched.lr)
    assert lrs == [0.1, 0.5, 1.0, 0.5]


def test_cosine_falls_to_min_lr_over_the_horizon_whatever_validation_says():
    _, sched = _opt(schedule="cosine", lr=1.0, min_lr=0.1)
    assert sched.lr == 1.0  # set at construction: the first update runs at the peak
    _, sched = _opt(schedule="cosine", lr=1.0, min_lr=0.1, max_steps=100)
    lrs = []
    for step in (0, 25, 50, 100, 150):
        sched.observe(-step, higher_is_better=True)  # ever worse: a plateau would decay
        sched.step(step)
        lrs.append(round(sched.lr, 6))
    assert lrs == [1.0, round(0.1 + 0.9 * (1 + 0.5**0.5) / 2, 6), 0.55, 0.1, 0.1]


def test_cosine_needs_the_runs_length():
    param = torch.nn.Parameter(torch.zeros(1))
    _, cfg = resolve({"schedule": "cosine"})
    with pytest.raises(ConfigError, match="max-steps or max-epochs"):
        LrSchedule(build_optimizer([param], cfg), cfg)


def test_plateau_decays_after_patience_and_resumes():
    _, sched = _opt(schedule="plateau", lr=1.0, lr_patience=1, lr_decay=0.5)
    for score in (10, 9, 8):  # first sets best, then two bad validations > patience 1
        sched.observe(score, higher_is_better=True)
    sched.step(100)
    assert sched.lr == 0.5
    _, other = _opt(schedule="plateau", lr=1.0, lr_patience=1, lr_decay=0.5)
    other.load_state_dict(sched.state_dict())
    other.step(101)
    assert other.lr == 0.5


def test_task_schedules():
    rr = TaskSchedule({"de": 10, "fr": 30}, "round-robin", 1.0, seed=0)
    assert [rr.next() for _ in range(4)] == ["de", "fr", "de", "fr"]
    assert rr.shares() == {"de": 0.5, "fr": 0.5}
    prop = TaskSchedule({"de": 900, "fr": 100}, "proportional", 1.0, seed=0)
    assert prop.shares() == pytest.approx({"de": 0.9, "fr": 0.1})
    draws = [prop.next() for _ in range(2000)]
    assert 0.85 < draws.count("de") / 2000 < 0.95
    hot = TaskSchedule({"de": 900, "fr": 100}, "temperature", 100.0, seed=0)
    draws = [hot.next() for _ in range(2000)]
    assert 0.4 < draws.count("de") / 2000 < 0.6
    # resume continues the same random sequence
    a = TaskSchedule({"de": 900, "fr": 100}, "proportional", 1.0, seed=5)
    [a.next() for _ in range(7)]
    b = TaskSchedule({"de": 900, "fr": 100}, "proportional", 1.0, seed=5)
    b.load_state_dict(a.state_dict())
    assert [a.next() for _ in range(20)] == [b.next() for _ in range(20)]


def test_task_weights():
    _, cfg = resolve({"task-weights": "fr=0.5"})
    assert cfg.task_weight_map(["de", "fr"]) == {"de": 1.0, "fr": 0.5}
