"""The training loop: reads top to bottom; validation, early stopping, checkpoints, exact resume.

Resume is exact on the CPU: a checkpoint holds the model, optimizer, schedule, every RNG state
the loop draws from, the samplers' (epoch, position) and the task schedule, so a run killed at any
moment and resumed from its last checkpoint ends with the same weights as a run never stopped.
Under torchrun each rank's RNG and sampler states are gathered into the checkpoint and given back
to that rank, so a resumed distributed run is exact too (with the same number of processes).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmt import checkpoint, runlog, warmstart
from nmt.bundle import open_bundle
from nmt.config import ModelConfig, TrainConfig, dump_toml, resolve, to_dict
from nmt.data import BucketSampler, make_batch
from nmt.device import Dist, autocast, autocast_dtype, choose_device, init_distributed, set_threads
from nmt.errors import CheckpointError, ConfigError
from nmt.loss import BatchLoss
from nmt.model import build_model
from nmt.optim import LrSchedule, build_optimizer, clip_gradients
from nmt.tasks import TaskSchedule
from nmt.tensorboard import Board
from nmt.validation import selection_score, validate

Report = Callable[[dict[str, Any]], None]


class Trainer:
    def __init__(self, run_dir: Path, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 report: Report | None = None):
        self.cfg = train_cfg
        self.model_cfg = model_cfg
        self.run_dir = Path(run_dir)
        self.report = report or (lambda record: None)
        self.dist: Dist = init_distributed(train_cfg.device)
        self.device = choose_device(train_cfg.device, self.dist.local_rank)
        set_threads(train_cfg.threads)  # first: auto precision times multiplies on these threads
        self.amp = autocast_dtype(self.device, train_cfg.precision)
        torch.manual_seed(train_cfg.seed)

        if not train_cfg.data:
            raise ConfigError("no data bundle given (--data)")
        self.bundle = open_bundle(Path(train_cfg.data))
        self.tasks = list(train_cfg.task_list) or list(self.bundle.tasks)
        unknown = [t for t in self.tasks if t not in self.bundle.tasks]
        if unknown:
            raise ConfigError(
                f"tasks {unknown} not in the bundle; it has {', '.join(self.bundle.tasks)}"
            )
        self.aux_tasks = list(train_cfg.aux_task_list)
        self.weights = train_cfg.task_weight_map(self.tasks)

        self.model = build_model(
            model_cfg, len(self.bundle.src_vocab),
            {t: len(self.bundle.tgt_vocabs[t]) for t in self.tasks}, *self._pretrained(),
        ).to(self.device)
        self.loss = BatchLoss(self.model, train_cfg.label_smoothing, train_cfg.kernels)
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # Several tasks: a batch uses one decoder, the others get no gradient that step.
            self.loss = DistributedDataParallel(
                self.loss, find_unused_parameters=len(self.tasks) > 1
            )
        self.optimizer = build_optimizer(self.model.parameters(), train_cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)

        self.source = self.bundle.source("train")
        self.targets = {t: self.bundle.target("train", t) for t in self.tasks}
        self.samplers = {
            t: BucketSampler(self.source.lengths, self.targets[t].lengths, train_cfg.batch_size,
                             train_cfg.batch_tokens, train_cfg.seed + i, train_cfg.max_len,
                             rank=self.dist.rank, world=self.dist.world)
            for i, t in enumerate(self.tasks)
        }
        self.task_schedule = TaskSchedule(
            {t: len(self.samplers[t].indices) for t in self.tasks}, train_cfg.task_schedule,
            train_cfg.task_temperature, train_cfg.seed,
        )
        self.schedule = LrSchedule(self.optimizer, train_cfg, self._horizon())
        self.step = 0
        # Wall seconds since the run began, across resumes: time-to-quality curves.
        self.clock = (0.0, time.perf_counter())
        self.best: float | None = None
        self.best_step: int | None = None  # the step best.pt holds
        self.bad_validations = 0
        self.log = runlog.MetricsLog(self.run_dir / runlog.METRICS, enabled=self.dist.main)
        self.meta = self._meta_files()

    # ---- setup -------------------------------------------------------------------------------
    def _horizon(self) -> int:
        """The run's updates: max-steps, or max-epochs of the task whose epochs end last."""
        cfg = self.cfg
        if not cfg.max_epochs:
            return cfg.max_steps
        shares = self.task_schedule.shares()
        batches = max(len(self.samplers[t]) / shares[t] for t in self.tasks)
        updates = math.ceil(cfg.max_epochs * batches / cfg.accum_steps)
        return min(updates, cfg.max_steps) if cfg.max_steps else updates

    def _pretrained(self) -> tuple[torch.Tensor | None, dict[str, torch.Tensor] | None]:
        """Pretrained source/target vectors named in the model config (target: every task)."""
        from nmt.embeddings import load_vectors

        def vectors(path: str, vocab) -> torch.Tensor:
            tokens = [vocab.token(i) for i in range(len(vocab))]
            weight, found = load_vectors(path, tokens, self.model_cfg.emb_size)
            self.report({
                "kind": "info", "message": f"{path}: vectors for {found} of {len(tokens)} tokens"
            })
            return weight

        cfg = self.model_cfg
        src = vectors(cfg.src_embeddings, self.bundle.src_vocab) if cfg.src_embeddings else None
        tgt = ({t: vectors(cfg.tgt_embeddings, self.bundle.tgt_vocabs[t]) for t in self.tasks}
               if cfg.tgt_embeddings else None)
        return src, tgt

    def _meta_files(self) -> dict[str, torch.Tensor]:
        """The bundle's small files (manifest, vocabularies, tokenizer models) as byte tensors,
        so that every checkpoint carries what translation needs."""
        meta = {}
        for name in self.bundle.meta_files():
            data = (self.bundle.path / name).read_bytes()
            meta[name] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return meta

    def warm_start(self) -> None:
        """Fine-tuning: begin with the weights of the run `init_from` names (warmstart.py)."""
        message = warmstart.warm_start(self.model, Path(self.cfg.init_from), self.model_cfg,
                                       self.bundle, self.tasks, self.cfg.map_vocab)
        if self.dist.main:
            self.report({"kind": "info", "message": message})

    def exclusive(self, resume: bool) -> contextlib.AbstractContextManager:
        """Rank 0, the one writer, claims the run directory for the whole run (runlog.claim)."""
        if not self.dist.main or (resume and not self.run_dir.is_dir()):
            return contextlib.nullcontext()  # nothing to resume: start() says so
        return runlog.claim(self.run_dir)

    def start(self, resume: bool) -> None:
        """Create the run directory, or restore the latest checkpoint of an existing one."""
        if resume:
            found = checkpoint.step_checkpoints(self.run_dir)
            if not found:
                raise CheckpointError(f"{self.run_dir}: no checkpoint to resume from")
            state = checkpoint.load(found[-1][1], keys=checkpoint.RESUME_KEYS)
            self._restore(state)
            self.best_step = state.get("best_step")
            if self.dist.main:  # a kill right after this checkpoint: best.pt stale, no prune
                if self.best_step == self.step:
                    checkpoint.copy(found[-1][1], self.run_dir / runlog.BEST)
                checkpoint.prune(self.run_dir, self.cfg.keep_last)
            self.log.truncate_after(self.step)
        elif self.dist.main:
            if checkpoint.step_checkpoints(self.run_dir):
                raise ConfigError(
                    f"{self.run_dir} already holds a run (use --resume to continue it)"
                )
            (self.run_dir / runlog.CONFIG).write_text(dump_toml(to_dict(self.model_cfg, self.cfg)))
            (self.run_dir / runlog.METRICS).unlink(missing_ok=True)
        if self.dist.main:
            (self.run_dir / runlog.DONE).unlink(missing_ok=True)  # until this run finishes

    def _rank_state(self) -> dict[str, Any]:
        """What each rank saves for itself: its RNG states (dropout draws on its own batches) and
        its samplers' positions."""
        return {
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "samplers": {t: s.state_dict() for t, s in self.samplers.items()},
        }

    def _payload(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint; `ranks`: every rank's `_rank_state()` in rank order."""
        return {
            "model_config": to_dict(self.model_cfg),
            "train_config": to_dict(self.cfg),
            "tasks": self.tasks,
            "aux_tasks": self.aux_tasks,
            "meta": self.meta,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "task_schedule": self.task_schedule.state_dict(),
            "ranks": ranks,
            "step": self.step,
            "elapsed_s": self.elapsed(),
            "best": self.best,
            # lets a resume repair best.pt when a kill comes between the save and the copy
            "best_step": self.best_step,
            "bad_validations": self.bad_validations,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        # Read as every checkpoint is (checkpoint.read): a setting added to nmt after the run
        # began takes its default, the old model's form.
        if resolve(state["model_config"])[0] != self.model_cfg:
            raise ConfigError("the model settings differ from the run's checkpoint; "
                              "resume with the run's own config.toml")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.task_schedule.load_state_dict(state["task_schedule"])
        self.step = state["step"]
        # Checkpoints older than per-rank states hold one process's RNG and samplers at the top.
        ranks = state.get("ranks") or [{"rng": state["rng"], "samplers": state["samplers"]}]
        same_world = len(ranks) == self.dist.world
        own = ranks[self.dist.rank if same_world else 0]
        for task, sampler in self.samplers.items():
            sampler.load_state_dict(own["samplers"][task])  # converts another world's position
        if same_world:
            torch.set_rng_state(own["rng"]["torch"])
            if own["rng"]["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(own["rng"]["cuda"])
        else:  # Saved states cannot be dealt out to another number of ranks: repeatable new ones.
            seed = np.random.SeedSequence([self.cfg.seed, self.step, self.dist.rank])
            torch.manual_seed(int(seed.generate_state(1)[0]))
            if self.dist.main:
                self.report({"kind": "info", "message": f"the checkpoint holds random states "
                             f"for {len(ranks)} process(es), this run has {self.dist.world}: they "
                             "restart from the seed (repeatable, not an unchanged run's draws)"})
        self.clock = (state.get("elapsed_s", 0.0), time.perf_counter())
        self.best = state["best"]
        self.bad_validations = state["bad_validations"]

    def elapsed(self) -> float:
        before, since = self.clock
        return round(before + time.perf_counter() - since, 3)

    # ---- the loop ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        iterators = {t: iter(s) for t, s in self.samplers.items()}
        window = {"loss": torch.zeros((), device=self.device), "tokens": 0, "sents": 0,
                  "time": time.perf_counter()}
        per_task = {t: torch.zeros((), device=self.device) for t in self.tasks}
        stop_reason = self._stop_reason()
        if self.dist.main:
            dtype = "fp32" if self.amp is None else str(self.amp).removeprefix("torch.")
            self.report({"kind": "info", "message": f"training on {self.device}, multiplies in "
                         f"{dtype} (--precision {cfg.precision})"})
        while stop_reason is None:
            self.model.train()
            self.schedule.step(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            batches = []
            for _ in range(cfg.accum_steps):
                task = self.task_schedule.next()
                indices = next(iterators[task])
                batches.append(make_batch(self.source, self.targets[task], indices, task))
            # Normalise by the update's real target tokens (over all ranks): the per-token mean of
            # one big batch. A CPU integer, so no host sync on a single device.
            update_tokens = self._global_tokens(sum(b.n_tgt_tokens for b in batches))
            sampling = self._sampling_rate(self.step)
            for number, batch in enumerate(batches, start=1):
                batch = batch.to(self.device)
                with self._sync_grads(number == len(batches)), autocast(self.device, self.amp):
                    loss_sum, _ = self.loss(batch.src_tokens, batch.src_lengths, batch.tgt_in,
                                            batch.tgt_out, batch.task, sampling)
                # DDP averages gradients over ranks; scale by world to get the sum.
                scale = self.weights[batch.task] * self.dist.world / update_tokens
                self.scaler.scale(loss_sum * scale).backward()
                window["loss"] += loss_sum.detach().float()
                per_task[batch.task] += loss_sum.detach().float()
                window["tokens"] += batch.n_tgt_tokens
                window["sents"] += len(batch.src_lengths)
            self.scaler.unscale_(self.optimizer)
            clip_gradients(self.model.parameters(), cfg.clip_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            if self.dist.main:  # for a progress display
                self.report({"kind": "step", "step": self.step, "epochs": self._epochs()})

            stop_reason = self._stop_reason()
            if self.step % cfg.log_every == 0 or stop_reason:
                self._log_train(window, per_task)
            if self.step % cfg.valid_every == 0 or stop_reason:
                started = time.perf_counter()
                self._validate_and_save()
                stop_reason = self._stop_reason()
                window["time"] += time.perf_counter() - started  # tokens/s: training time only
        summary = {"step": self.step, "stopped": stop_reason, "best": self.best,
                   "epochs": int(self._epochs()),
                   "metric": cfg.valid_metric, "best_step": self.best_step,
                   "elapsed_s": self.elapsed()}
        self.report({"kind": "done", **summary})
        return summary

    def _sampling_rate(self, done: int) -> float:
        """Scheduled sampling's rate once `done` updates are done: linear from 0 to
        sampling-rate over the run."""
        if not self.cfg.sampling_rate:
            return 0.0
        return self.cfg.sampling_rate * min(1.0, done / self.schedule.horizon)

    def _sync_grads(self, last: bool) -> contextlib.AbstractContextManager:
        """Under DDP, reduce gradients only on the last batch of an accumulated update."""
        if self.dist.world == 1 or last:
            return contextlib.nullcontext()
        return self.loss.no_sync()

    def _global_tokens(self, tokens: int) -> int:
        if self.dist.world == 1:
            return tokens
        import torch.distributed as dist

        total = torch.tensor([tokens], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(total)
        return int(total.item())

    def _epochs(self) -> float:
        """Epochs done by the task furthest behind."""
        return min(s.epochs_done for s in self.samplers.values())

    def _stop_reason(self) -> str | None:
        cfg = self.cfg
        if cfg.max_steps and self.step >= cfg.max_steps:
            return "max_steps"
        if cfg.max_epochs and self._epochs() >= cfg.max_epochs:
            return "max_epochs"
        if cfg.patience and self.bad_validations >= cfg.patience:
            return "patience"
        return None

    def _log_train(self, window: dict[str, Any], per_task: dict[str, torch.Tensor]) -> None:
        # One host sync per log interval ("note: this is a CPU-GPU sync point").
        tokens = max(window["tokens"], 1)
        loss = float(window["loss"]) / tokens
        elapsed = time.perf_counter() - window["time"]
        record = {"kind": "train", "step": self.step, "elapsed_s": self.elapsed(),
                  "epoch": int(self._epochs()),
                  "loss": loss, "ppl": math.exp(min(loss, 50.0)), "lr": self.schedule.lr,
                  "tokens_per_s": window["tokens"] / elapsed,
                  "sents_per_s": window["sents"] / elapsed}
        if self.cfg.sampling_rate:
            record["sampling_rate"] = self._sampling_rate(self.step - 1)  # the last update's
        if len(self.tasks) > 1:
            record["task_loss_sum"] = {t: float(v) for t, v in per_task.items()}
        self.log.write(record)
        self.report(record)
        window.update(loss=torch.zeros((), device=self.device), tokens=0, sents=0,
                      time=time.perf_counter())
        for value in per_task.values():
            value.zero_()

    # ---- validation and checkpoints ----------------------------------------------------------

    def _validate_and_save(self) -> None:
        results = (validate(self.model, self.bundle, self.tasks, self.cfg, self.device, self.amp)
                   if self.bundle.has_split("valid") else {})
        improved = False
        if results:
            score = selection_score(results, self.cfg, self.aux_tasks)
            higher = self.cfg.valid_metric == "bleu"
            improved = self.best is None or (score > self.best if higher else score < self.best)
            if improved:
                self.best, self.bad_validations = score, 0
            else:
                self.bad_validations += 1
            self.schedule.observe(score, higher)
            record = {"kind": "valid", "step": self.step, "elapsed_s": self.elapsed(),
                      "score": score, "best": improved,
                      "lr": self.schedule.lr, **{t: r for t, r in results.items()}}
            self.log.write(record)
            self.report(record)
        if improved or not results:
            self.best_step = self.step
        ranks = self.dist.gather(self._rank_state())  # a collective: every rank, before saving
        if not self.dist.main:
            return
        path = checkpoint.step_path(self.run_dir, self.step)
        checkpoint.save(path, self._payload(ranks))
        if self.best_step == self.step:
            checkpoint.copy(path, self.run_dir / runlog.BEST)
        checkpoint.prune(self.run_dir, self.cfg.keep_last)


def train(run_dir: Path, model_cfg: ModelConfig, train_cfg: TrainConfig, resume: bool = False,
          report: Report | None = None) -> dict[str, Any]:
    """Train (or resume) a model; the library entry point of `nmt train`.

    With `init_from` a new run begins with that run's weights (warmstart.py); a resume does not.
    Only a run that finished writes RUN_DIR/done.json, last: a recipe's mark of a trained model.
    """
    # First: without the package, --tensorboard fails before any work.
    board = Board(Path(train_cfg.tensorboard)) if train_cfg.tensorboard else None
    trainer = Trainer(run_dir, model_cfg, train_cfg, report)
    try:
        if train_cfg.init_from and not resume:
            trainer.warm_start()
        with trainer.exclusive(resume), contextlib.ExitStack() as stack:
            trainer.start(resume)
            if board is not None and trainer.dist.main:
                trainer.report = stack.enter_context(board.open(trainer.step, trainer.report))
            summary = trainer.run()
            if trainer.dist.main:
                runlog.write_done(trainer.run_dir, summary)
            return summary
    finally:
        if trainer.dist.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
