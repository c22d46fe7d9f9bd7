"""`nmt train`: options -> nmt.train.train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from nmt_cli import console
from nmt_cli.options import with_config_options


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
    elif kind == "done":
        console.info(
            f"finished at step {record['step']} ({record['stopped']}); best {record['best']}"
        )


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
            # checked against them (nmt.warmstart.init_weights).
            layers.insert(0, model_settings(Path(train_cfg.init_from)))
            model_cfg, train_cfg = cfg_mod.resolve(*layers)
        run_training(resume or out, model_cfg, train_cfg, resume=resume is not None, report=_report)
