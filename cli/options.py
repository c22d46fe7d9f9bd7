"""Option spellings shared by commands, and `nmt train`'s options generated from the config
dataclasses (one spelling per setting: field `emb_size` <-> option `--emb-size` <-> config key)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from nmt.config import CONFIG_CLASSES, DecodeOptions, option_name

Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Threads = Annotated[int, typer.Option(min=0, help="CPU threads (0 = one per core).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and warnings.")]
RunPaths = Annotated[
    list[Path],
    typer.Option("--model", "-m", help="A run directory (its best checkpoint) or a .pt file; "
                 "repeat for an ensemble (the models share their vocabularies)."),
]

_PANELS = {"ModelConfig": "Model", "TrainConfig": "Training"}


def config_parameters() -> list[inspect.Parameter]:
    """One keyword-only, default-None option per config field (None = not given)."""
    params = []
    for cls in CONFIG_CLASSES:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            hint = hints[field.name]  # a Literal field: Typer lists its values and checks them
            name = option_name(field.name)
            decls = [f"--{name}/--no-{name}"] if hint is bool else [f"--{name}"]
            option = typer.Option(*decls, help=field.metadata["help"],
                                  rich_help_panel=_PANELS[cls.__name__],
                                  show_default=str(field.default) if field.default != "" else False)
            params.append(inspect.Parameter(
                field.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                annotation=Annotated[hint | None, option],  # noqa: UP007 (typer needs Optional)
            ))
    return params


# The decoding options that forced decoding (`nmt score`) reads.
SCORING = ("precision", "alpha", "batch_size", "batch_tokens", "window")


def decoding_parameters(names: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One keyword-only option per field of DecodeOptions (those of `names`; all by default),
    with its default (a Literal field is a choice that Typer checks)."""
    hints = typing.get_type_hints(DecodeOptions)
    params = []
    for field in dataclasses.fields(DecodeOptions):
        if names and field.name not in names:
            continue
        hint = hints[field.name]
        option = typer.Option(f"--{option_name(field.name)}", help=field.metadata["help"],
                              min=field.metadata.get("min"), rich_help_panel="Decoding")
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=field.default, annotation=Annotated[hint, option]))
    return params


def with_config_options(func: Any) -> Any:
    """Append the generated config options to a command function's signature."""
    return _append_options(func, config_parameters())


def with_decoding_options(func: Any) -> Any:
    """Append the decoding options (shared by translate and evaluate) to a command's signature;
    the command takes them as **settings and builds DecodeOptions(**settings)."""
    return _append_options(func, decoding_parameters())


def with_scoring_options(func: Any) -> Any:
    """Append the decoding options of `nmt score` (SCORING) to a command's signature."""
    return _append_options(func, decoding_parameters(SCORING))


def _append_options(func: Any, params: list[inspect.Parameter]) -> Any:
    signature = inspect.signature(func, eval_str=True)
    fixed = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = signature.replace(parameters=fixed + params)
    return func
