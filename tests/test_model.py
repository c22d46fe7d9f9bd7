import pytest
import torch

from nmt.config import ModelConfig
from nmt.errors import ConfigError
from nmt.loss import sequence_loss
from nmt.model import Seq2Seq, build_model
from nmt.vocab import BOS, EOS, PAD

from conftest import NEEDS_BF16

TINY = ModelConfig(emb_size=8, hidden_size=12, attention_size=6, dropout=0.1)


def batch(seed=0, batch_size=4, vocab=10):
    gen = torch.Generator().manual_seed(seed)
    src_lengths = torch.tensor([5, 2, 4, 3][:batch_size])
    src = torch.randint(4, vocab, (batch_size, 5), generator=gen)
    src[torch.arange(5) >= src_lengths[:, None]] = PAD
    body = torch.randint(4, vocab - 1, (batch_size, 4), generator=gen)  # tgt vocab 9
    tgt_in = torch.cat([torch.full((batch_size, 1), BOS), body], dim=1)
    tgt_out = torch.cat([body, torch.full((batch_size, 1), EOS)], dim=1)
    tgt_in[1, 3:] = PAD
    tgt_out[1, 2] = EOS
    tgt_out[1, 3:] = PAD
    return src, src_lengths, tgt_in, tgt_out


def train_step(model, optimizer, task="de", data=None):
    src, src_lengths, tgt_in, tgt_out = data or batch()
    hidden, _ = model(src, src_lengths, tgt_in, task)
    loss, n_tokens = sequence_loss(model.decoders[task].out_proj, hidden, tgt_out)
    optimizer.zero_grad()
    (loss / n_tokens).backward()
    optimizer.step()
    return float(loss.detach() / n_tokens)


def test_build_and_shapes():
    model = build_model(TINY, 10, {"de": 9})
    assert isinstance(model, Seq2Seq) and model.tasks == ("de",)
    src, src_lengths, tgt_in, _ = batch()
    hidden, attn = model(src, src_lengths, tgt_in, "de")
    assert hidden.shape == (4, 5, 12) and attn.shape == (4, 5, 5)
    assert model.decoders["de"].output(hidden).shape == (4, 5, 9)
    assert model.decoders["de"].attention.key_proj.out_features == 6
    assert (
        build_model(ModelConfig(hidden_size=12, attention_size=0), 10, {"de": 9})
        .decoders["de"]
        .attention.key_proj.out_features
        == 12
    )  # 0 means the hidden size
    for emb in (model.encoder.embeddings, model.decoders["de"].embeddings):
        assert emb.weight[PAD].abs().sum() == 0
    assert all(p.abs().max() <= 0.1 for p in model.parameters())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_parameter_gets_a_gradient(cell):
    model = build_model(
        ModelConfig(emb_size=8, hidden_size=12, cell=cell, dec_layers=2, enc_layers=2),
        10,
        {"de": 9},
    )
    src, src_lengths, tgt_in, tgt_out = batch()
    hidden, _ = model(src, src_lengths, tgt_in, "de")
    loss, _ = sequence_loss(model.decoders["de"].out_proj, hidden, tgt_out)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_frozen_pretrained_embeddings_get_no_update():
    src_vectors, tgt_vectors = torch.randn(10, 8), torch.randn(9, 8)
    for freeze in (True, False):
        cfg = ModelConfig(emb_size=8, hidden_size=12, freeze_embeddings=freeze)
        model = build_model(cfg, 10, {"de": 9}, src_vectors, {"de": tgt_vectors})
        src_emb, tgt_emb = model.encoder.embeddings.weight, model.decoders["de"].embeddings.weight
        assert torch.equal(src_emb[1:], src_vectors[1:]) and torch.equal(
            tgt_emb[1:], tgt_vectors[1:]
        )
        params = [p for p in model.parameters() if p.requires_grad]
        train_step(model, torch.optim.Adam(params, lr=0.01))
        assert torch.equal(src_emb[1:], src_vectors[1:]) == freeze
        assert torch.equal(tgt_emb[1:], tgt_vectors[1:]) == freeze
    with pytest.raises(ConfigError, match="source vectors"):
        build_model(TINY, 10, {"de": 9}, src_vectors=torch.randn(10, 5))


def test_shared_decoder_embeddings():
    cfg = ModelConfig(emb_size=8, hidden_size=12, share_decoder_embeddings=True)
    model = build_model(cfg, 10, {"de": 9, "fr": 9})
    de, fr = model.decoders["de"], model.decoders["fr"]
    assert de.embeddings.weight is fr.embeddings.weight
    assert de.out_proj.weight is fr.out_proj.weight
    assert de.feed_proj.weight is not fr.feed_proj.weight  # the rest is per task
    separate = build_model(ModelConfig(emb_size=8, hidden_size=12), 10, {"de": 9, "fr": 9})
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(separate) - count(model) == 9 * 8 + 9 * 12 + 9
    # Training one task moves the shared table that the other reads.
    before = fr.out_proj.weight.detach().clone()
    train_step(model, torch.optim.Adam(model.parameters(), lr=0.01), task="de")
    assert not torch.equal(before, fr.out_proj.weight)
    with pytest.raises(ConfigError, match="one target vocabulary size"):
        build_model(cfg, 10, {"de": 9, "fr": 8})


def test_tied_embeddings():
    cfg = ModelConfig(emb_size=12, hidden_size=12, tie_embeddings=True)
    model = build_model(cfg, 10, {"de": 9})
    decoder = model.decoders["de"]
    assert decoder.out_proj.weight is decoder.embeddings.weight
    train_step(model, torch.optim.Adam(model.parameters(), lr=0.01))
    assert decoder.out_proj.weight is decoder.embeddings.weight
    assert decoder.readout is None


def test_tied_embeddings_of_another_size_read_out_through_a_projection():
    """emb-size != hidden-size: logits = E (W_r a_t) + b, with E the target embeddings; the
    fast kernels (fused output layer and loss) give the plain loss and gradients."""
    from nmt.loss import BatchLoss

    cfg = ModelConfig(emb_size=8, hidden_size=12, tie_embeddings=True, dropout=0.0)
    model = build_model(cfg, 10, {"de": 9})
    decoder = model.decoders["de"]
    assert decoder.out_proj.weight is decoder.embeddings.weight  # (9, 8)
    assert decoder.readout.weight.shape == (8, 12)
    src, src_lengths, tgt_in, tgt_out = batch()
    hidden, _ = model(src, src_lengths, tgt_in, "de")
    assert hidden.shape == (4, 5, 8)
    results = []
    for setting in ("auto", "plain"):
        loss, _ = BatchLoss(model, 0.1, setting)(src, src_lengths, tgt_in, tgt_out, "de")
        results.append((loss, torch.autograd.grad(loss, list(model.parameters()))))
    (fast, fast_grads), (plain, plain_grads) = results
    assert torch.allclose(fast, plain, atol=1e-5)
    for a, b in zip(fast_grads, plain_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    model.eval()
    enc = model.encode(src, src_lengths)
    hidden, _ = decoder(tgt_in, enc)
    logits = decoder.out_proj(hidden)  # (B, T, V)
    state, memory = decoder.init_state(enc), decoder.memory(enc)
    for t in range(tgt_in.size(1)):
        step_logits, state, _ = decoder.step(tgt_in[:, t], state, memory)
        assert torch.allclose(step_logits, logits[:, t], atol=1e-5)


def test_state_dict_round_trip_keeps_sharing():
    cfg = ModelConfig(
        emb_size=12, hidden_size=12, tie_embeddings=True, share_decoder_embeddings=True
    )
    model = build_model(cfg, 10, {"de": 9, "fr": 9}).eval()
    torch.manual_seed(1)
    fresh = build_model(cfg, 10, {"de": 9, "fr": 9}).eval()
    fresh.load_state_dict(model.state_dict())
    src, src_lengths, tgt_in, _ = batch()
    for task in ("de", "fr"):
        assert torch.equal(
            model(src, src_lengths, tgt_in, task)[0], fresh(src, src_lengths, tgt_in, task)[0]
        )
    assert fresh.decoders["de"].out_proj.weight is fresh.decoders["fr"].embeddings.weight


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from a second thread, and spinning threads on a busy machine can
    make this test 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reversal_batch(src_lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Random sentences of these lengths (up to 6) over 10 symbols, and their reversals:
    src, src_lengths, tgt_in, tgt_out."""
    size = len(src_lengths)
    src = torch.randint(4, 14, (size, 6))
    src[torch.arange(6) >= src_lengths[:, None]] = PAD
    tgt_in = torch.full((size, 7), PAD)
    tgt_out = torch.full((size, 7), PAD)
    for i in range(size):
        row = src[i, : src_lengths[i]].flip(0)
        tgt_in[i, : len(row) + 1] = torch.cat([torch.tensor([BOS]), row])
        tgt_out[i, : len(row) + 1] = torch.cat([row, torch.tensor([EOS])])
    return src, src_lengths, tgt_in, tgt_out


def test_overfits_a_few_sentence_pairs(one_thread):
    """The toy task (reverse the source) is learnt: the loss falls by far on a handful of pairs."""
    torch.manual_seed(0)
    data = _reversal_batch(torch.tensor([6, 5, 6, 4, 3, 6, 5, 2]))
    model = build_model(ModelConfig(emb_size=16, hidden_size=32, dropout=0.0), 14, {"rev": 14})
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = [
        train_step(model, optimizer, "rev", data) for _ in range(50)
    ]
    assert losses[-1] < 0.1 * losses[0], losses[::10]


def test_empty_source_sentence_gives_finite_outputs():
    model = build_model(TINY, 10, {"de": 9}).eval()
    src, src_lengths, tgt_in, _ = batch()
    src[2] = PAD
    src_lengths[2] = 0
    hidden, attn = model(src, src_lengths, tgt_in, "de")
    assert torch.isfinite(hidden).all() and torch.isfinite(attn).all()


def test_plain_kernels_train_the_toy_task_to_the_same_quality(runner, reversal_bundle, tmp_path):
    """`nmt train --kernels plain` (the plain model, nmt/kernels) and the default (the fast
    kernels) learn the toy reversal task alike: the same training curve while rounding
    differences are still small, then both solve the task. (Once those differences have grown,
    around the steep fall of the loss, the two runs part ways as runs from two seeds would, and
    one validation can land on either side of it: the best validation is compared.)"""
    from nmt.runlog import read_metrics
    from nmt_cli.main import app

    bad = runner.invoke(app, ["train", "--data", str(reversal_bundle), "--out",
                              str(tmp_path / "bad"), "--kernels", "fast"])
    assert bad.exit_code == 2 and "kernels" in bad.stderr and "plain" in bad.stderr
    curves, best = {}, {}
    for kernels in ([], ["--kernels", "plain"]):
        run = tmp_path / ("plain" if kernels else "default")
        result = runner.invoke(app, [
            "-q", "train", "--data", str(reversal_bundle), "--out", str(run), "--emb-size", "32",
            "--hidden-size", "64", "--dropout", "0.1", "--lr", "0.005", "--lr-patience", "0",
            "--batch-size", "32", "--threads", "1", "--max-steps", "400", "--valid-every", "50",
            "--log-every", "10", *kernels,
        ])
        assert result.exit_code == 0, result.stderr
        records = read_metrics(run / "metrics.jsonl")
        curves[run.name] = [r["loss"] for r in records if r["kind"] == "train"]
        best[run.name] = max(r["rev"]["bleu"] for r in records if r["kind"] == "valid")
    assert 'kernels = "plain"' in (tmp_path / "plain" / "config.toml").read_text()
    default, plain = curves["default"][:8], curves["plain"][:8]  # steps 10-80
    assert plain == pytest.approx(default, rel=0.02)
    assert best["default"] > 85 and best["plain"] > 85  # both solve it (from 0.5 at step 50)


def test_regularised_model_learns_the_toy_task(one_thread):
    """With every regularisation option on (word dropout, state dropout, out-dropout, weight
    decay) the reversal task is still learnt: the loss falls by far."""
    torch.manual_seed(0)
    data = _reversal_batch(torch.randint(2, 7, (16,)))
    cfg = ModelConfig(emb_size=16, hidden_size=32, dropout=0.1, out_dropout=0.2, enc_dropout=0.2,
                      word_dropout=0.1)
    model = build_model(cfg, 14, {"rev": 14})
    assert model.encoder.word_dropout.whole_tokens and model.encoder.state_dropout.p == 0.2
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03, weight_decay=1e-5)
    losses = [
        train_step(model, optimizer, "rev", data) for _ in range(80)
    ]
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_layer_norm_model_learns_the_toy_task_and_starts_as_a_plain_normalisation(one_thread):
    """--layer-norm: the normalisers start with gain 1 and bias 0 (not the uniform init of the
    other weights), and the reversal task is learnt with them."""
    torch.manual_seed(0)
    data = _reversal_batch(torch.randint(2, 7, (16,)))
    model = build_model(ModelConfig(emb_size=16, hidden_size=32, dropout=0.1, dec_layers=2,
                                    layer_norm=True), 14, {"rev": 14})
    norms = model.decoders["rev"].norms
    assert len(norms) == 4
    assert all(bool((n.weight == 1).all() and (n.bias == 0).all()) for n in norms)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = [train_step(model, optimizer, "rev", data) for _ in range(80)]
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_conditional_decoder_learns_the_toy_task(one_thread):
    """--conditional (two layers): the reversal task is learnt without input feeding."""
    torch.manual_seed(0)
    data = _reversal_batch(torch.randint(2, 7, (16,)))
    model = build_model(ModelConfig(emb_size=16, hidden_size=32, dropout=0.1, dec_layers=2,
                                    conditional=True), 14, {"rev": 14})
    assert model.decoders["rev"].feed_proj is None
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = [train_step(model, optimizer, "rev", data) for _ in range(80)]
    assert losses[-1] < 0.3 * losses[0], losses[::10]


@pytest.mark.parametrize("decoder", [
    [], ["--conditional"], pytest.param(["--conditional", "--precision", "bf16"], marks=NEEDS_BF16)
])
def test_tied_readout_and_regularisation_learn_the_toy_task_and_translate(runner,
                                                                           reversal_bundle,
                                                                           tmp_path, decoder):
    """`nmt train` with the new model options (tied embeddings through a readout, state and word
    dropout, out-dropout, layer norm; the input-feeding and the conditional decoder) learns the
    reversal task; its checkpoint translates at every decoding precision, one line per input."""
    from nmt.runlog import read_metrics
    from nmt_cli.main import app

    run = tmp_path / "run"
    result = runner.invoke(app, [
        "-q", "train", "--data", str(reversal_bundle), "--out", str(run), "--emb-size", "32",
        "--hidden-size", "64", "--tie-embeddings", "--dropout", "0.1", "--enc-dropout", "0.2",
        "--out-dropout", "0.2", "--word-dropout", "0.05", "--weight-decay", "1e-5", "--layer-norm",
        "--lr", "0.01", "--batch-size", "32", "--threads", "1", "--max-steps", "500",
        "--valid-every", "500", "--log-every", "20", *decoder,
    ])
    assert result.exit_code == 0, result.stderr
    assert (f"conditional = {str(bool(decoder)).lower()}" in (run / "config.toml").read_text())
    assert ("bf16" in decoder) == ('precision = "bf16"' in (run / "config.toml").read_text())
    records = read_metrics(run / "metrics.jsonl")
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < 0.5 * losses[0], losses
    assert [r["rev"] for r in records if r["kind"] == "valid"][-1]["bleu"] > 50.0
    source = tmp_path / "in.txt"
    source.write_text("a b c d e\nq r s\n")
    for precision in ("int8", "bf16", "fp32"):
        out = tmp_path / f"out.{precision}.txt"
        result = runner.invoke(app, ["-q", "translate", "-m", str(run), "-i", str(source),
                                     "-o", str(out), "--precision", precision])
        assert result.exit_code == 0, result.stderr
        assert len(out.read_text().splitlines()) == 2
