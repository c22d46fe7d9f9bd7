"""Warm start (fine-tuning): a new run begins from another run's trained weights.

Only the weights come over; the optimizer, learning-rate schedule, step count and early-stopping
state start fresh, on the new run's bundle. The architecture is the init run's: the settings
that shape the weights (ARCHITECTURE) must equal its own. Embedding and output rows are indexed
by token id, so the new bundle's vocabularies must equal the init model's token for token; tokens
are not mapped between different vocabularies (preprocess the new data with the init run's
tokenizers and vocabularies). The init checkpoint is read by checkpoint.load: no code runs from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from nmt import checkpoint
from nmt.bundle import Bundle, open_meta
from nmt.config import ModelConfig, option_name, resolve
from nmt.errors import CheckpointError, ConfigError, DataError
from nmt.translate import find_checkpoint
from nmt.vocab import Vocabulary

ARCHITECTURE = (
    "emb_size",
    "hidden_size",
    "enc_layers",
    "dec_layers",
    "cell",
    "attention_size",
    "tie_embeddings",
    "share_decoder_embeddings",
)
# Carried into the fine-tuning run unless given; pretrained vector files are not: the init
# weights already hold them.
CARRIED = (*ARCHITECTURE, "dropout")


def _open(path: Path) -> tuple[Path, dict[str, Any], ModelConfig, Bundle]:
    """The init checkpoint (a run directory means its best.pt), its model settings and meta."""
    found = find_checkpoint(path)
    state = checkpoint.load(found, mmap=True, keys=checkpoint.INFERENCE_KEYS)
    try:  # what the checkpoint holds for other modules to read: errors name the checkpoint
        model_cfg, _ = resolve(state["model_config"])
        files = {name: data.numpy().tobytes() for name, data in state["meta"].items()}
        meta = open_meta(files, Path("meta"))
    except (ConfigError, DataError) as err:
        raise CheckpointError(f"{found}: {err}") from None
    return found, state, model_cfg, meta


def model_settings(path: Path) -> dict[str, Any]:
    """The init run's model settings (CARRIED): the lowest layer of a fine-tuning run's config,
    under the config file and the command line."""
    _, _, model_cfg, _ = _open(path)
    return {key: getattr(model_cfg, key) for key in CARRIED}


def init_weights(
    path: Path, model_cfg: ModelConfig, bundle: Bundle, tasks: Sequence[str]
) -> tuple[Path, dict[str, Tensor]]:
    """(checkpoint, weights): the init model's encoder and the decoders of `tasks`, for a model
    of `model_cfg` over `bundle`'s vocabularies. Whatever does not match is a ConfigError that
    names it."""
    found, state, init_cfg, meta = _open(path)
    where = f"--init-from {found}"
    differ = [
        f"{option_name(k)} {getattr(model_cfg, k)!r} (the init model's: {getattr(init_cfg, k)!r})"
        for k in ARCHITECTURE
        if getattr(model_cfg, k) != getattr(init_cfg, k)
    ]
    if differ:
        raise ConfigError(
            f"{where}: the model settings come from the init run, and these differ: "
            f"{', '.join(differ)}; leave them out or give the init run's values"
        )
    for key in ("src_embeddings", "tgt_embeddings"):
        if getattr(model_cfg, key):
            raise ConfigError(
                f"{where}: {option_name(key)} cannot be given when fine-tuning "
                "(the init model's embeddings are used)"
            )
    missing = [t for t in tasks if t not in state["tasks"]]
    if missing:
        raise ConfigError(
            f"{where}: no decoder for task(s) {', '.join(missing)} in the init "
            f"model (its tasks: {', '.join(state['tasks'])})"
        )
    pairs = [("source", bundle.src_vocab, meta.src_vocab)]
    pairs += [(f"target ({t})", bundle.tgt_vocabs[t], meta.tgt_vocabs[t]) for t in tasks]
    differences = [
        f"the {side} vocabulary {_difference(new, old)}" for side, new, old in pairs if new != old
    ]
    if differences:
        raise ConfigError(
            f"{where}: the vocabularies of {bundle.path} differ from the init "
            f"model's: {'; '.join(differences)}. Fine-tuning needs the init run's "
            "vocabularies: preprocess the new data with its tokenizers and "
            "vocabularies"
        )
    kept = ("encoder.", *(f"decoders.{t}." for t in tasks))
    return found, {k: v for k, v in state["model"].items() if k.startswith(kept)}


def _difference(new: Vocabulary, old: Vocabulary) -> str:
    """How two different vocabularies differ, in a few words."""
    common = min(len(new), len(old))
    first = next((i for i in range(common) if new.token(i) != old.token(i)), common)
    text = f"has {len(new)} tokens against {len(old)}"
    if first < common:
        text += (
            f", first differing at id {first} ({new.token(first)!r} against {old.token(first)!r})"
        )
    return text
