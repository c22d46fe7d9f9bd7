import importlib.util
import json
import random

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from nmt.errors import ConfigError, DataError
from nmt.evaluate import (
    TOKENIZERS,
    Metrics,
    compare,
    read_aligned,
    score_corpus,
    score_lines,
    score_sentences,
)
from nmt_cli.main import app

HYPS = ["The cat sat on the mat .", "A dog runs in the park", "Hello world"]
REFS = ["The cat sat on the mat.", "A dog is running in the park", "Hello, world!"]
REFS2 = ["the cat is sitting on the mat.", "A dog runs in a park.", "hello world"]

WORDS = "the a cat dog sat on mat runs park in hello world red big small".split()


def _systems(n: int = 60) -> tuple[list[str], list[str], list[str]]:
    """A reference and two systems, the second closer to it than the first."""
    rng = random.Random(3)
    refs = [" ".join(rng.choices(WORDS, k=8)) for _ in range(n)]

    def noisy(p: float) -> list[str]:
        return [
            " ".join(w if rng.random() > p else rng.choice(WORDS) for w in line.split())
            for line in refs
        ]

    return refs, noisy(0.4), noisy(0.1)


def _write(path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_scores_equal_sacrebleu_own():
    bleu, chrf = score_lines(HYPS, REFS)
    assert bleu.score == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert chrf.score == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert bleu.signature.startswith("nrefs:1|case:mixed")


def test_several_references_lowercase_and_tokenize_reach_sacrebleu():
    metrics = Metrics(("bleu", "chrf"), lowercase=True, tokenize="intl")
    bleu, chrf = score_corpus(HYPS, [REFS, REFS2], metrics)
    own = BLEU(lowercase=True, tokenize="intl").corpus_score(HYPS, [REFS, REFS2]).score
    assert bleu.score == pytest.approx(own)
    assert bleu.score != pytest.approx(score_lines(HYPS, REFS)[0].score)
    assert chrf.score == pytest.approx(CHRF(lowercase=True).corpus_score(HYPS, [REFS, REFS2]).score)
    assert "nrefs:2|case:lc" in bleu.signature and "tok:intl" in bleu.signature


def test_sentence_scores_equal_sacrebleu_sentence_scores():
    scores = list(score_sentences(HYPS, [REFS], Metrics(("bleu", "chrf", "ter"))))
    assert len(scores) == len(HYPS)
    bleu = BLEU(effective_order=True)
    for hyp, ref, line in zip(HYPS, REFS, scores, strict=True):
        assert line["BLEU"] == pytest.approx(bleu.sentence_score(hyp, [ref]).score)
        assert line["chrF2"] == pytest.approx(CHRF().sentence_score(hyp, [ref]).score)
        assert set(line) == {"BLEU", "chrF2", "TER"}


def test_tokenize_choices_are_sacrebleus():
    assert set(TOKENIZERS) <= set(BLEU.TOKENIZERS)
    assert {"13a", "intl", "zh", "char", "none"} <= set(TOKENIZERS)


@pytest.mark.skipif(importlib.util.find_spec("MeCab") is not None, reason="MeCab is installed")
def test_tokenizer_without_its_extra_is_a_config_error():
    with pytest.raises(ConfigError, match="--tokenize ja-mecab"):
        score_lines(HYPS, REFS, Metrics(tokenize="ja-mecab"))


def test_line_count_mismatch_names_every_file(tmp_path):
    hyp, other, ref = tmp_path / "hyp.txt", tmp_path / "b.txt", tmp_path / "ref.txt"
    hyp.write_text("a\nb\n")
    other.write_text("a\nb\n")
    ref.write_text("a\n")
    with pytest.raises(DataError) as err:
        read_aligned(hyp, other, ref)
    assert f"{hyp} has 2 lines, {other} has 2, {ref} has 1" in str(err.value)


def test_compare_is_sacrebleus_paired_tests_and_seeded():
    refs, base, better = _systems()
    systems = [("base", base), ("better", better)]
    bleu, chrf = compare(systems, [refs], Metrics(), resamples=200, trials=300)
    assert [s.name for s in bleu.systems] == ["base", "better"]
    assert bleu.systems[0].p_bootstrap is None and bleu.systems[0].p_ar is None
    assert bleu.systems[1].score > bleu.systems[0].score
    assert 0 < bleu.systems[1].p_bootstrap < 0.05 and 0 < bleu.systems[1].p_ar < 0.05
    assert "bs:200|seed:12345" in bleu.bootstrap_signature
    assert "ar:300|seed:12345" in bleu.ar_signature
    # sacreBLEU's own, with its default seed: the same numbers
    _, own = PairedTest(systems, {"bleu": BLEU()}, [refs], test_type="bs", n_samples=200)()
    assert own["BLEU"][1].p_value == bleu.systems[1].p_bootstrap
    assert own["BLEU"][1].ci == pytest.approx(bleu.systems[1].ci)
    assert chrf.metric == "chrF2"
    again = compare(systems, [refs], Metrics(), resamples=200, trials=300)
    assert again == [bleu, chrf]
    other = compare(systems, [refs], Metrics(), resamples=200, trials=300, seed=7)
    assert other[0].systems[1].mean != bleu.systems[1].mean
    with pytest.raises(ConfigError, match="seed"):
        compare(systems, [refs], Metrics(), seed=0)


def test_cli_one_hyp_keeps_its_json(runner, tmp_path):
    hyp, ref = _write(tmp_path / "hyp", HYPS), _write(tmp_path / "ref", REFS)
    result = runner.invoke(app, ["evaluate", "--hyp", hyp, "--ref", ref, "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"BLEU", "chrF2"}
    assert report["BLEU"]["score"] == round(sacrebleu.corpus_bleu(HYPS, [REFS]).score, 4)


def test_cli_several_refs_lowercase_tokenize(runner, tmp_path):
    hyp, ref = _write(tmp_path / "hyp", HYPS), _write(tmp_path / "ref", REFS)
    ref2 = _write(tmp_path / "ref2", REFS2)
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--hyp",
            hyp,
            "--ref",
            ref,
            "--ref",
            ref2,
            "--lowercase",
            "--tokenize",
            "char",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "nrefs:2|case:lc|eff:no|tok:char" in result.stdout
    own = BLEU(lowercase=True, tokenize="char").corpus_score(HYPS, [REFS, REFS2])
    assert f"BLEU = {own.score:.2f}" in result.stdout


def test_cli_compares_systems(runner, tmp_path):
    refs, base, better = _systems()
    files = [
        _write(tmp_path / name, lines)
        for name, lines in (("base", base), ("better", better), ("ref", refs))
    ]
    args = [
        "evaluate",
        "--hyp",
        files[0],
        "--hyp",
        files[1],
        "--ref",
        files[2],
        "--resamples",
        "100",
        "--trials",
        "200",
        "--paired-seed",
        "3",
    ]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "BLEU" and "p (bootstrap)" in lines[1] and "p (AR)" in lines[1]
    assert lines[2].split()[0] == files[0] and "baseline" in lines[2]
    assert lines[3].split()[0] == files[1] and lines[3].endswith("*")
    assert "bs:100|seed:3" in table.stdout and "ar:200|seed:3" in table.stdout
    data = runner.invoke(app, [*args, "--json"])
    assert data.exit_code == 0, data.stderr
    report = json.loads(data.stdout)
    assert report["baseline"] == files[0]
    rows = report["BLEU"]["systems"]
    assert [r["hyp"] for r in rows] == files[:2] and rows[0]["p_ar"] is None
    assert 0 < rows[1]["p_bootstrap"] < 0.05 and rows[1]["mean"] - rows[1]["ci"] > 0
    assert f"{rows[1]['score']:.2f}" in lines[3]
    assert runner.invoke(app, [*args, "--json"]).stdout == data.stdout  # seeded


def test_cli_sentences(runner, tmp_path):
    hyp, ref = _write(tmp_path / "hyp", HYPS), _write(tmp_path / "ref", REFS)
    result = runner.invoke(
        app, ["evaluate", "--hyp", hyp, "--hyp", ref, "--ref", ref, "--sentences", "--ter"]
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["hyp"], r["line"]) for r in records] == [
        (hyp, 1),
        (hyp, 2),
        (hyp, 3),
        (ref, 1),
        (ref, 2),
        (ref, 3),
    ]
    assert records[1]["BLEU"] == round(
        BLEU(effective_order=True).sentence_score(HYPS[1], [REFS[1]]).score, 4
    )
    assert all(r["BLEU"] == 100 and r["TER"] == 0 for r in records[3:])


@pytest.mark.parametrize("extra", [["--ref"], ["--hyp"]])
def test_cli_line_counts_differ(runner, tmp_path, extra):
    hyp, ref = _write(tmp_path / "hyp", HYPS), _write(tmp_path / "ref", REFS)
    short = _write(tmp_path / "short", REFS[:2])
    result = runner.invoke(app, ["evaluate", "--hyp", hyp, "--ref", ref, *extra, short])
    assert result.exit_code == 2
    assert f"{short} has 2" in result.stderr and f"{hyp} has 3 lines" in result.stderr
    assert result.stdout == ""


def test_cli_bad_tokenize_and_seed_are_refused(runner, tmp_path):
    hyp, ref = _write(tmp_path / "hyp", HYPS), _write(tmp_path / "ref", REFS)
    bad = runner.invoke(app, ["evaluate", "--hyp", hyp, "--ref", ref, "--tokenize", "moses"])
    assert bad.exit_code == 2 and "'13a', 'intl'" in " ".join(bad.stderr.replace("│", " ").split())
    args = ["evaluate", "--hyp", hyp, "--hyp", hyp, "--ref", ref, "--paired-seed", "0"]
    zero = runner.invoke(app, args)
    assert zero.exit_code == 2 and "--paired-seed" in zero.stderr


def test_cli_model_path_takes_lowercase_and_tokenize(runner, tmp_path, reversal_run):
    src = _write(tmp_path / "src", ["a b c d e", "q r s", "f g h i"])
    refs = ["e d c b a", "s r q", "i h g f"]
    upper = _write(tmp_path / "upper", [line.upper() for line in refs])
    lower = _write(tmp_path / "lower", refs)
    common = ["evaluate", "-m", str(reversal_run), "--src", src, "--beam", "1", "--json"]
    scores = {}
    for name, ref, options in [
        ("lower", lower, []),
        ("upper", upper, []),
        ("upper-lc", upper, ["--lowercase", "--tokenize", "none"]),
    ]:
        result = runner.invoke(app, [*common, "--ref", ref, *options])
        assert result.exit_code == 0, result.output
        scores[name] = json.loads(result.stdout)["BLEU"]
    assert scores["upper-lc"]["score"] == scores["lower"]["score"] > scores["upper"]["score"]
    assert (
        "case:lc" in scores["upper-lc"]["signature"]
        and "tok:none" in scores["upper-lc"]["signature"]
    )
    refused = runner.invoke(app, [*common, "--ref", lower, "--sentences"])
    assert refused.exit_code == 3 and "--sentences" in refused.stderr
