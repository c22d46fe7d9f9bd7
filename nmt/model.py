"""The sequence-to-sequence model: one shared encoder, one attentional decoder per task.

Shape letters used in every model module:
    B batch, S source length, T target length, E embedding size, H hidden size (encoder: H/2 per
    direction), A attention size, G gate pre-activation size (4H lstm, 3H gru, H rnn),
    V vocabulary size, K beam size, L layers, N = B * K rows during search.

`build_model` is the only place where the configuration meets `nn.Module`. Parameters start
uniform in (-0.1, 0.1) (as OpenNMT and Luong et al. 2015 do for recurrent NMT), the PAD
embedding rows at zero; pretrained vectors are copied in afterwards.
"""

from __future__ import annotations

from torch import Tensor, nn

from nmt.config import ModelConfig
from nmt.decoder import Decoder
from nmt.embeddings import INIT_RANGE, Embeddings
from nmt.encoder import Encoder, EncoderOutput
from nmt.errors import ConfigError
from nmt.vocab import PAD


class Seq2Seq(nn.Module):
    """Shared encoder + `decoders`, an nn.ModuleDict {task: Decoder} (one entry for one task)."""

    def __init__(self, encoder: Encoder, decoders: dict[str, Decoder]):
        super().__init__()
        self.encoder = encoder
        self.decoders = nn.ModuleDict(decoders)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.decoders.keys())

    def encode(self, src_tokens: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """src_tokens (B, S), src_lengths (B,) on the CPU -> EncoderOutput."""
        return self.encoder(src_tokens, src_lengths)

    def forward(self, src_tokens: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                task: str, sampling: float = 0.0) -> tuple[Tensor, Tensor]:
        """Teacher forcing for one task (what DDP wraps), or scheduled sampling at the rate
        `sampling` (decoder.py).

        Returns:
            attentional vectors (B, T, H), to give to `loss.sequence_loss` with
            `self.decoders[task].out_proj`; attention weights (B, T, S).
        """
        return self.decoders[task](tgt_in, self.encode(src_tokens, src_lengths), sampling)


def build_model(
    cfg: ModelConfig,
    src_vocab_size: int,
    tgt_vocab_sizes: dict[str, int],
    src_vectors: Tensor | None = None,
    tgt_vectors: dict[str, Tensor] | None = None,
) -> Seq2Seq:
    """Build the model of `cfg` for the given vocabularies (one target vocabulary per task).

    src_vectors (V_src, E) / tgt_vectors {task: (V_task, E)} are pretrained tables from
    `embeddings.load_vectors`, frozen when cfg.freeze_embeddings. With
    cfg.share_decoder_embeddings all decoders use one target embedding and output layer (the
    first task's vectors, if any), which needs equal target vocabulary sizes.
    """
    if not tgt_vocab_sizes:
        raise ConfigError("the model needs at least one target side (task)")
    shared = cfg.share_decoder_embeddings
    if shared and len(set(tgt_vocab_sizes.values())) > 1:
        raise ConfigError(
            f"share-decoder-embeddings needs one target vocabulary size; got {tgt_vocab_sizes}"
        )
    src_emb = Embeddings(src_vocab_size, cfg.emb_size)
    encoder = Encoder(src_emb, cfg.hidden_size, cfg.enc_layers, cfg.cell, cfg.dropout,
                      cfg.enc_dropout, cfg.word_dropout)
    out_dropout = None if cfg.out_dropout == -1.0 else cfg.out_dropout
    attention_size = cfg.attention_size or cfg.hidden_size
    shared_parts: tuple[Embeddings, nn.Linear] | None = None
    decoders: dict[str, Decoder] = {}
    # Tying to embeddings of another size than the decoder's puts a readout (H -> E) between them.
    readout = cfg.tie_embeddings and cfg.emb_size != cfg.hidden_size
    for task, vocab_size in tgt_vocab_sizes.items():
        if shared_parts is None or not shared:
            shared_parts = (Embeddings(vocab_size, cfg.emb_size),
                            nn.Linear(cfg.emb_size if readout else cfg.hidden_size, vocab_size))
        emb, out_proj = shared_parts
        decoders[task] = Decoder(emb, cfg.hidden_size, cfg.hidden_size, attention_size,
                                 cfg.dec_layers, cfg.cell, cfg.dropout, out_proj, out_dropout,
                                 readout, cfg.layer_norm, cfg.conditional)
    model = Seq2Seq(encoder, decoders)
    _init_parameters(model)
    if cfg.tie_embeddings:
        for decoder in decoders.values():
            decoder.out_proj.weight = decoder.embeddings.weight
    if src_vectors is not None:
        _load(src_emb, src_vectors, cfg.freeze_embeddings, "source")
    for task, vectors in (tgt_vectors or {}).items():
        if task not in decoders:
            raise ConfigError(f"target vectors for unknown task {task!r}")
        if shared and task != next(iter(decoders)):
            continue  # one shared table, loaded from the first task's vectors
        _load(decoders[task].embeddings, vectors, cfg.freeze_embeddings, task)
    return model


def _init_parameters(model: nn.Module) -> None:
    for param in model.parameters():
        nn.init.uniform_(param, -INIT_RANGE, INIT_RANGE)
    for module in model.modules():
        if isinstance(module, Embeddings):
            nn.init.zeros_(module.weight[PAD])
        elif isinstance(module, nn.LayerNorm):
            module.reset_parameters()  # gain 1, bias 0: a normalisation before training


def _load(emb: Embeddings, vectors: Tensor, freeze: bool, side: str) -> None:
    if tuple(vectors.shape) != tuple(emb.weight.shape):
        raise ConfigError(
            f"{side} vectors have shape {tuple(vectors.shape)}, the model needs "
            f"{tuple(emb.weight.shape)} (vocabulary x emb-size)"
        )
    emb.load(vectors, freeze)
