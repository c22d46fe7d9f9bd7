"""Warm start (fine-tuning): a new run begins from another run's trained weights.

Only the weights come over; the optimizer, learning-rate schedule, step count and early-stopping
state start fresh, on the new run's bundle. The architecture is the init run's: the settings
that shape the weights (ARCHITECTURE) must equal its own. Embedding and output rows are indexed
by token id, so the new bundle's vocabularies must equal the init model's token for token (the
init run's tokenizers and vocabularies), or, with map_vocab, a token the two share gets its rows
from the init model and a new token starts untrained. The init checkpoint is read by
checkpoint.load: no code runs from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nmt import checkpoint
from nmt.bundle import Bundle
from nmt.config import ModelConfig, option_name
from nmt.errors import ConfigError
from nmt.model import Seq2Seq
from nmt.vocab import Vocabulary

ARCHITECTURE = (
    "emb_size",
    "hidden_size",
    "enc_layers",
    "dec_layers",
    "cell",
    "attention_size",
    "layer_norm",
    "conditional",
    "tie_embeddings",
    "share_decoder_embeddings",
)
# Carried into the fine-tuning run unless given; pretrained vector files are not: the init
# weights already hold them.
CARRIED = (*ARCHITECTURE, "dropout", "out_dropout", "enc_dropout", "word_dropout")
# A target vocabulary's rows in a decoder (the source's: the encoder's embeddings).
_TARGET_ROWS = ("embeddings.weight", "out_proj.weight", "out_proj.bias")


def model_settings(path: Path) -> dict[str, Any]:
    """The init run's model settings (CARRIED): the lowest layer of a fine-tuning run's config,
    under the config file and the command line."""
    model_cfg = checkpoint.read(path).model_cfg
    return {key: getattr(model_cfg, key) for key in CARRIED}


def warm_start(
    model: Seq2Seq,
    path: Path,
    model_cfg: ModelConfig,
    bundle: Bundle,
    tasks: Sequence[str],
    map_vocab: bool = False,
) -> str:
    """Give `model` (built for `model_cfg`, `bundle`'s vocabularies and `tasks`) the init model's
    encoder and the decoders of `tasks`; returns a line that says what was loaded. Whatever does
    not match is a ConfigError that names it. With `map_vocab`, vocabularies that differ take the
    init model's embedding and output rows of the tokens they share (looked up by spelling); the
    other tokens keep `model`'s fresh rows."""
    init = checkpoint.read(path)
    found, state, init_cfg, meta = init.path, init.state, init.model_cfg, init.meta
    where = f"--init-from {found}"
    _check_settings(where, model_cfg, init_cfg)
    missing = [t for t in tasks if t not in state["tasks"]]
    if missing:
        raise ConfigError(
            f"{where}: no decoder for task(s) {', '.join(missing)} in the init "
            f"model (its tasks: {', '.join(state['tasks'])})"
        )
    # Per vocabulary: a side's name, the tensors whose rows are its tokens, new and init's.
    sides = [("source", ["encoder.embeddings.weight"], bundle.src_vocab, meta.src_vocab)]
    for t in tasks:
        rows = [f"decoders.{t}.{name}" for name in _TARGET_ROWS]
        sides.append((f"target ({t})", rows, bundle.tgt_vocabs[t], meta.tgt_vocabs[t]))
    differing = [side for side in sides if side[2] != side[3]]
    if differing and not map_vocab:
        differences = [
            f"the {name} vocabulary {_difference(new, old)}" for name, _, new, old in differing
        ]
        raise ConfigError(
            f"{where}: the vocabularies of {bundle.path} differ from the init model's: "
            f"{'; '.join(differences)}. Preprocess the new data with the init bundle's "
            "tokenizers and vocabularies (nmt preprocess --spm-model, --vocab), or give "
            "--map-vocab to carry over the tokens they share"
        )
    kept = ("encoder.", *(f"decoders.{t}." for t in tasks))
    weights = {k: v for k, v in state["model"].items() if k.startswith(kept)}
    fresh = model.state_dict()
    notes = []
    for name, keys, new, old in differing:
        # Never empty: the special tokens are in every vocabulary, at the same ids.
        pairs = [(i, old.index(new.token(i))) for i in range(len(new)) if new.token(i) in old]
        new_ids, old_ids = (torch.tensor(ids, dtype=torch.long) for ids in zip(*pairs, strict=True))
        for key in keys:
            weights[key] = fresh[key].cpu().clone()  # on the CPU, as the checkpoint's
            weights[key][new_ids] = state["model"][key][old_ids]
        notes.append(f"{name}: {len(pairs)} of {len(new)} tokens from the init model")
    model.load_state_dict(weights)
    return f"fine-tuning from {found}" + (f" ({'; '.join(notes)})" if notes else "")


def _check_settings(where: str, model_cfg: ModelConfig, init_cfg: ModelConfig) -> None:
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
