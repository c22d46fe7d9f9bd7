"""`nmt train`: options -> nmt.train.train; log lines, a progress bar on a terminal, a summary."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nmt_cli import console
from nmt_cli.options import with_config_options

if TYPE_CHECKING:
    from nmt.config import TrainConfig


class _Display:
    """What `nmt train` shows on stderr: a line per log interval, validation and message (the
    same lines whether or not stderr is a terminal), a progress bar toward --max-steps or
    --max-epochs (whichever is nearer) on a terminal, and a one-line summary at the end."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, bar: Progress):
        self.cfg = cfg
        self.run_dir = run_dir
        self.bar = bar
        bounded = bool(cfg.max_steps or cfg.max_epochs)
        self.task = bar.add_task("training", total=1.0 if bounded else None)
        self.first: tuple[int, float] | None = None  # (step, time) of the first update seen
        self.loss: float | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        if kind == "step":
            self._advance(record["step"], record["epochs"])
        elif kind == "done":
            self.bar.stop()  # the summary is the last line, under the bar's last state
            if not console.is_quiet():  # soft wrap: one line, as a log needs
                console.stderr.print(self._summary(record), soft_wrap=True)
        else:
            if kind == "train":
                self.loss = record["loss"]
            _report(record)

    def _advance(self, step: int, epochs: float) -> None:
        if self.bar.disable:
            return
        now = time.perf_counter()
        if self.first is None:
            self.first = (step, now)
        rate = (step - self.first[0]) / max(now - self.first[1], 1e-9)
        cfg = self.cfg
        # Toward the nearer of the two ends: the larger fraction.
        done = max(
            step / cfg.max_steps if cfg.max_steps else 0.0,
            epochs / cfg.max_epochs if cfg.max_epochs else 0.0,
        )
        text = (
            f"step {step}{f'/{cfg.max_steps}' if cfg.max_steps else ''}  "
            f"epoch {epochs:.2f}{f'/{cfg.max_epochs}' if cfg.max_epochs else ''}  "
            f"{rate:.2f} steps/s"
        )
        if self.loss is not None:
            text += f"  loss {self.loss:.3f}"
        self.bar.update(self.task, description=text, completed=min(done, 1.0))

    def _summary(self, record: dict[str, Any]) -> str:
        from nmt.runlog import BEST

        took = timedelta(seconds=round(record["elapsed_s"]))
        text = f"finished at step {record['step']} ({record['stopped']}) in {took}; "
        if record["best"] is None:
            text += "no validation split, so the best model is the last checkpoint: "
        else:
            digits = 2 if record["metric"] == "bleu" else 3
            text += (
                f"best {record['metric']} {record['best']:.{digits}f} at step "
                f"{record['best_step']}: "
            )
        return text + escape(str(self.run_dir / BEST))  # a user path


def _columns(cfg: TrainConfig) -> list[ProgressColumn]:
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    if cfg.max_steps or cfg.max_epochs:  # else no end to tell: a pulsing bar, no time left
        columns[2:2] = [TaskProgressColumn()]
        columns += [TimeRemainingColumn(), TextColumn("left")]
    return columns


def _report(record: dict[str, Any]) -> None:
    kind = record["kind"]
    if kind == "train":
        console.info(
            f"step {record['step']:>7}  epoch {record['epoch']:>3}  loss {record['loss']:.3f}  "
            f"ppl {record['ppl']:8.2f}  lr {record['lr']:.2e}  {record['tokens_per_s']:,.0f} tok/s"
        )
    elif kind == "valid":
        for task, r in record.items():
            if isinstance(r, dict):
                console.info(
                    f"[bold]valid[/bold] step {record['step']:>7}  {task}: loss {r['loss']:.3f}  "
                    f"ppl {r['ppl']:.2f}  BLEU {r['bleu']:.2f}  chrF {r['chrf']:.2f}"
                    + ("  [green]best[/green]" if record["best"] else "")
                )
    elif kind == "info":
        console.info(escape(record["message"]))  # may name user files


@with_config_options
def train(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory to create.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML file of settings (option = value).")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run in this directory from its last checkpoint."),
    ] = None,
    **settings: Any,
) -> None:
    """Train a model on a data bundle; every setting can come from --config or the command line."""
    from nmt import config as cfg_mod
    from nmt.runlog import CONFIG
    from nmt.train import train as run_training
    from nmt_cli.console import cli_errors

    with cli_errors():
        if (out is None) == (resume is None):
            raise cfg_mod.ConfigError("give exactly one of --out RUN_DIR or --resume RUN_DIR")
        layers = []
        if resume is not None:
            layers.append(cfg_mod.load_file(resume / CONFIG))
        if config is not None:
            layers.append(cfg_mod.load_file(config))
        layers.append(settings)
        model_cfg, train_cfg = cfg_mod.resolve(*layers)
        if train_cfg.init_from and resume is None:
            from nmt.warmstart import model_settings

            # The init run's model settings are the lowest layer: a setting given otherwise is
            # checked against them (nmt.warmstart.warm_start).
            layers.insert(0, model_settings(Path(train_cfg.init_from)))
            model_cfg, train_cfg = cfg_mod.resolve(*layers)
        run_dir = resume or out
        with console.progress(columns=_columns(train_cfg)) as bar:
            run_training(
                run_dir,
                model_cfg,
                train_cfg,
                resume=resume is not None,
                report=_Display(train_cfg, run_dir, bar),
            )
