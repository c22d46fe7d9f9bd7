"""Settings as frozen dataclasses: one source of defaults and help for the library and the CLI.

A config file (TOML) is flat: its keys are the long option names of `nmt train` (`emb-size` or
`emb_size`). Resolution order: field default < config file < command line. Unknown keys and values
of the wrong type are a ConfigError that lists what is valid.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nmt.errors import ConfigError


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: what `build_model` reads; saved in every checkpoint."""

    emb_size: int = _opt(256, "Embedding size (source and target).")
    hidden_size: int = _opt(
        512, "Decoder hidden size; the bidirectional encoder uses half per direction."
    )
    enc_layers: int = _opt(1, "Encoder layers (each bidirectional).")
    dec_layers: int = _opt(1, "Decoder layers.")
    cell: Literal["lstm", "gru", "rnn"] = _opt("lstm", "Recurrent cell: lstm, gru or rnn (Elman).")
    dropout: float = _opt(
        0.3, "Dropout on embeddings, between layers and on the attentional vectors fed to the "
        "next step."
    )
    out_dropout: float = _opt(
        -1.0, "Dropout before the output layer, a draw of its own that is not fed back to the "
        "next step; -1: the output layer reads the fed attentional vector (--dropout)."
    )
    enc_dropout: float = _opt(0.0, "Dropout on the encoder states that attention reads.")
    word_dropout: float = _opt(
        0.0, "Drop whole source tokens (their embedding is zeroed) with this probability."
    )
    attention_size: int = _opt(0, "Additive attention size; 0 means the hidden size.")
    layer_norm: bool = _opt(
        False, "Layer normalisation in the decoder's recurrent layers: the input and recurrent "
        "pre-activations of each cell are normalised apart."
    )
    conditional: bool = _opt(
        False, "Conditional decoder (Nematus' cGRU, with the chosen cell): no input feeding; the "
        "top layer's state advances a second time per step, on the attention's context."
    )
    tie_embeddings: bool = _opt(
        False, "Tie target embedding and output weights; when emb-size differs from hidden-size, "
        "a projection to emb-size comes before the output layer."
    )
    src_embeddings: str = _opt("", "Pretrained source vectors (word2vec/GloVe text file).")
    tgt_embeddings: str = _opt("", "Pretrained target vectors (word2vec/GloVe text file).")
    freeze_embeddings: bool = _opt(False, "Keep loaded pretrained embeddings fixed.")
    share_decoder_embeddings: bool = _opt(
        False, "Multi-task: one target embedding and output layer for all decoders (shared vocab)."
    )


@dataclass(frozen=True)
class TrainConfig:
    """How to train: batching, optimisation, validation, checkpoints, device."""

    data: str = _opt("", "Data bundle directory (made by `nmt preprocess`).")
    init_from: str = _opt(
        "",
        "Fine-tune: start from this run's weights (its best checkpoint, or a .pt file) with a "
        "fresh optimizer, schedule and step count; the model settings are the init run's.",
    )
    map_vocab: bool = _opt(
        False,
        "Fine-tune on other vocabularies: tokens shared with the init model keep its embedding "
        "and output rows, new tokens start untrained (else differing vocabularies are an error).",
    )
    batch_size: int = _opt(64, "Sentences per batch (used when batch-tokens is 0).")
    batch_tokens: int = _opt(0, "Target tokens per batch; 0 means batch by batch-size.")
    max_len: int = _opt(100, "Longest source/target kept for training (tokens).")
    lr: float = _opt(5e-4, "Peak learning rate.")
    optimizer: Literal["adam", "adamw"] = _opt("adam", "Optimizer.")
    weight_decay: float = _opt(0.0, "Weight decay (decoupled with adamw).")
    schedule: Literal["plateau", "warmup", "cosine", "constant"] = _opt(
        "plateau",
        "LR schedule: reduce on validation plateau, warm-up + inverse-sqrt decay, a cosine "
        "down to min-lr over max-steps (else max-epochs), or none.",
    )
    warmup_steps: int = _opt(1000, "Warm-up steps of the warmup schedule.")
    lr_decay: float = _opt(0.5, "Plateau schedule: factor applied to the LR.")
    lr_patience: int = _opt(2, "Plateau schedule: validations without improvement before decay.")
    min_lr: float = _opt(1e-6, "Lower bound on the learning rate.")
    label_smoothing: float = _opt(0.0, "Label smoothing of the cross-entropy.")
    sampling_rate: float = _opt(
        0.0, "Scheduled sampling: the final probability that a decoder input token is the "
        "model's own greedy choice of the step before instead of the reference; it rises "
        "linearly from 0 over the run (needs max-steps or max-epochs). 0: teacher forcing.",
    )
    clip_norm: float = _opt(5.0, "Clip the global gradient norm to this; 0 disables.")
    accum_steps: int = _opt(1, "Batches accumulated into one update.")
    max_steps: int = _opt(0, "Stop after this many updates; 0 means no limit.")
    max_epochs: int = _opt(0, "Stop after this many epochs; 0 means no limit.")
    valid_every: int = _opt(1000, "Validate every N updates (and at the end).")
    valid_metric: Literal["bleu", "loss"] = _opt("bleu", "Metric for early stopping and best.")
    valid_beam: int = _opt(1, "Beam size of validation translation (1 = greedy).")
    patience: int = _opt(10, "Stop after this many validations without improvement; 0 = never.")
    keep_last: int = _opt(3, "Checkpoints kept besides the best.")
    log_every: int = _opt(100, "Log training metrics every N updates.")
    tensorboard: str = _opt(
        "",
        "Also write loss, learning rate, validation metrics and throughput to TensorBoard "
        "event files in this directory (needs the tensorboard package: the extra of that name).",
    )
    seed: int = _opt(42, "Random seed (data order, initialisation, dropout).")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = _opt(
        "auto",
        "Autocast precision of the multiplies: bf16 (CUDA, or CPU with native bf16), fp16 (CUDA), "
        "fp32. auto = bf16 where the GPU has it, or the CPU (AMX, AVX512-BF16) has it and a probe "
        "multiplies it faster than fp32; else fp32.",
    )
    kernels: Literal["auto", "plain"] = _opt(
        "auto", "auto: the fast kernels (nmt/kernels) where faster; plain: the plain model only."
    )
    threads: int = _opt(0, "CPU threads for torch; 0 means one per core.")
    tasks: str = _opt("", "Comma-separated tasks (target sides) to train; empty means all.")
    task_schedule: Literal["round-robin", "proportional", "temperature"] = _opt(
        "round-robin", "Multi-task: which task each batch is drawn from."
    )
    task_temperature: float = _opt(5.0, "Multi-task: temperature of the temperature schedule.")
    task_weights: str = _opt("", "Multi-task loss weights, e.g. 'de=1,fr=0.5'; default 1 each.")
    aux_tasks: str = _opt("", "Tasks that are training-only (dropped at translation time).")
    select_task: str = _opt(
        "", "Task whose validation metric picks the best checkpoint; empty=mean."
    )

    # The task settings are strings in files and checkpoints; these are their one parse.
    @property
    def task_list(self) -> tuple[str, ...]:
        """--tasks as names; empty means all of the bundle's."""
        return _items(self.tasks)

    @property
    def aux_task_list(self) -> tuple[str, ...]:
        return _items(self.aux_tasks)

    def task_weight_map(self, tasks: Sequence[str]) -> dict[str, float]:
        """--task-weights ('de=1,fr=0.5') for each of `tasks`; a task not named weighs 1."""
        weights = {task: 1.0 for task in tasks}
        for name, weight in _weights(self.task_weights).items():
            if name not in weights:
                raise ConfigError(f"task-weights: {name!r} is not a task; tasks are "
                                  f"{', '.join(tasks)}")
            weights[name] = weight
        return weights


CONFIG_CLASSES = (ModelConfig, TrainConfig)

# Of the decoders' multiplies at translation (precision.py); auto: precision.auto_precision.
Precision = Literal["auto", "fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


@dataclass(frozen=True)
class DecodeOptions:
    """How `nmt translate` and `nmt evaluate -m` decode: one set, so both give the same lines.
    Each field is the CLI option of the same name (help and lowest value in its metadata)."""

    precision: Precision = field(default="auto", metadata={
        "help": "Decoder multiplies: fp32, bf16 (GPU, or CPU with AMX or AVX512-BF16), int8 "
                "(CPU) or auto: int8 on the CPU, bf16 on a "
                "GPU that has it, else fp32. Each gives the same line whatever the batch."})
    beam: int = field(default=5, metadata={"help": "Beam size; 1 is greedy search.", "min": 1})
    alpha: float = field(default=1.0, metadata={
        "help": "Length normalisation exponent (0 = none).", "min": 0.0})
    max_len_a: float = field(default=1.5, metadata={
        "help": "Max output length = a * source length + b.", "min": 0.0})
    max_len_b: int = field(default=10, metadata={"help": "See --max-len-a.", "min": 0})
    batch_size: int = field(default=64, metadata={"help": "Sentences per batch.", "min": 1})
    batch_tokens: int = field(default=0, metadata={
        "help": "Source tokens per batch (0 = by sentences).", "min": 0})
    window: int = field(default=2000, metadata={
        "help": "Lines read and length-sorted at a time.", "min": 1})
    sample: bool = field(default=False, metadata={
        "help": "Draw each token at random instead of searching (back-translation); "
                "reproducible with --seed, whatever the batch."})
    temperature: float = field(default=1.0, metadata={
        "help": "--sample: probabilities raised to 1/temperature (<1 sharper, >1 flatter)."})
    top_k: int = field(default=0, metadata={
        "help": "--sample: draw from the k most probable tokens only (0 = all).", "min": 0})
    top_p: float = field(default=1.0, metadata={
        "help": "--sample: draw from the fewest most probable tokens holding this much "
                "probability (1 = all)."})
    seed: int = field(default=0, metadata={
        "help": "--sample: random seed; each line draws from its own generator seeded by "
                "the seed and its line number.", "min": 0})

    def __post_init__(self) -> None:
        from nmt.sampling import Sampling  # imports torch: not for `nmt --help`

        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, "
                              f"got {self.precision!r}")
        Sampling(self.temperature, self.top_k, self.top_p, self.seed)  # refuses bad values


def _items(text: str) -> tuple[str, ...]:
    """A comma-separated setting ('de, fr') as its items."""
    return tuple(item for item in (part.strip() for part in text.split(",")) if item)


def _weights(text: str) -> dict[str, float]:
    """'de=1,fr=0.5' -> {name: weight}."""
    weights = {}
    for item in _items(text):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"task-weights: bad item {item!r} (expected TASK=WEIGHT)")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"task-weights: {value!r} is not a number") from None
    return weights


def option_name(key: str) -> str:
    """Field name -> long option name (`emb_size` -> `emb-size`)."""
    return key.replace("_", "-")


def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _all_fields() -> dict[str, tuple[type, dataclasses.Field]]:
    return {name: (cls, f) for cls in CONFIG_CLASSES for name, f in fields_of(cls).items()}


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{option_name(key)}: {value!r} is not one of {', '.join(choices)}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{option_name(key)}: expected {hint.__name__}, got {value!r}")


def resolve(*layers: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """Merge layers of settings (later wins; None values skipped) into the two configs."""
    known = _all_fields()
    merged: dict[str, Any] = {}
    for layer in layers:
        for raw_key, value in layer.items():
            key = raw_key.replace("-", "_")
            if key not in known:
                valid = ", ".join(sorted(option_name(k) for k in known))
                raise ConfigError(f"unknown setting {raw_key!r}; valid settings: {valid}")
            if value is not None:
                merged[key] = value
    built = []
    for cls in CONFIG_CLASSES:
        hints = typing.get_type_hints(cls)
        values = {k: _coerce(k, merged[k], hints[k]) for k in fields_of(cls) if k in merged}
        built.append(cls(**values))
    model, train = built
    _check(model, train)
    return model, train  # type: ignore[return-value]


def _check(model: ModelConfig, train: TrainConfig) -> None:
    positive = {
        "emb_size": model.emb_size,
        "hidden_size": model.hidden_size,
        "enc_layers": model.enc_layers,
        "dec_layers": model.dec_layers,
        "accum_steps": train.accum_steps,
        "valid_every": train.valid_every,
        "log_every": train.log_every,
        "max_len": train.max_len,
        "valid_beam": train.valid_beam,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{option_name(key)} must be at least 1, got {value}")
    if model.hidden_size % 2:
        raise ConfigError(
            f"hidden-size must be even (split over two directions), got {model.hidden_size}"
        )
    for key in ("dropout", "enc_dropout", "word_dropout"):
        if not 0.0 <= getattr(model, key) < 1.0:
            raise ConfigError(f"{option_name(key)} must be in [0, 1), got {getattr(model, key)}")
    if not (model.out_dropout == -1.0 or 0.0 <= model.out_dropout < 1.0):
        raise ConfigError(f"out-dropout must be -1 or in [0, 1), got {model.out_dropout}")
    if train.batch_size < 1 and train.batch_tokens < 1:
        raise ConfigError("set batch-size or batch-tokens to a positive number")
    if not 0.0 <= train.label_smoothing < 1.0:
        raise ConfigError(f"label-smoothing must be in [0, 1), got {train.label_smoothing}")
    if not 0.0 <= train.sampling_rate <= 1.0:
        raise ConfigError(f"sampling-rate must be in [0, 1], got {train.sampling_rate}")
    if train.sampling_rate and not (train.max_steps or train.max_epochs):
        raise ConfigError("scheduled sampling rises over the run's length: set max-steps or "
                          "max-epochs")
    _weights(train.task_weights)  # a malformed item is refused before any work


def load_file(path: Path | str) -> dict[str, Any]:
    """Read a flat TOML config file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(f"{path}: config is flat (option = value); found sections {nested}")
    return data


def to_dict(*configs: Any) -> dict[str, Any]:
    """Flat dict of every field (for checkpoints and logs)."""
    out: dict[str, Any] = {}
    for cfg in configs:
        out.update(dataclasses.asdict(cfg))
    return out


def dump_toml(values: dict[str, Any]) -> str:
    """Flat scalars as TOML (JSON string escapes are valid TOML basic strings)."""
    lines = []
    for key, value in values.items():
        text = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        lines.append(f"{option_name(key)} = {text}")
    return "\n".join(lines) + "\n"
