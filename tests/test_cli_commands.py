"""`nmt train / translate / evaluate / average` through the CLI: happy paths and bad input."""

from __future__ import annotations

import json
import select
import subprocess
import sys

import sacrebleu

from nmt.errors import CheckpointError
from nmt_cli.main import app


def test_help_lists_commands(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("preprocess", "train", "translate", "evaluate", "average"):
        assert command in result.stdout


def test_train_unknown_config_key(runner, tmp_path, reversal_bundle):
    config = tmp_path / "c.toml"
    config.write_text("emb-size = 16\nhiden-size = 32\n")
    result = runner.invoke(app, ["train", "--data", str(reversal_bundle),
                                 "--out", str(tmp_path / "r"), "--config", str(config)])
    assert result.exit_code == 3
    assert "hiden-size" in result.stderr and "hidden-size" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_cli_overrides_config_and_saves_it(runner, tmp_path, reversal_bundle):
    config = tmp_path / "c.toml"
    config.write_text("emb-size = 16\nhidden-size = 32\nmax-steps = 100\nthreads = 1\n")
    run = tmp_path / "run"
    result = runner.invoke(app, ["-q", "train", "--data", str(reversal_bundle), "--out", str(run),
                                 "--config", str(config), "--max-steps", "3", "--valid-every", "3"])
    assert result.exit_code == 0, result.stderr
    saved = (run / "config.toml").read_text()
    assert "max-steps = 3\n" in saved and "emb-size = 16\n" in saved
    again = runner.invoke(app, ["train", "--data", str(reversal_bundle), "--out", str(run)])
    assert again.exit_code != 0 and "--resume" in again.stderr


def test_translate_files_and_evaluate(runner, tmp_path, reversal_run):
    src = tmp_path / "in.txt"
    src.write_text("a b c d e\n\nq r s\n")
    ref = tmp_path / "ref.txt"
    ref.write_text("e d c b a\n\ns r q\n")
    hyp = tmp_path / "out.txt"
    result = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(src),
                                 "-o", str(hyp), "--beam", "3"])
    assert result.exit_code == 0, result.stderr
    lines = hyp.read_text().split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""
    assert not (tmp_path / "out.txt.partial").exists()

    scored = runner.invoke(app, ["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--json"])
    assert scored.exit_code == 0, scored.stderr
    report = json.loads(scored.stdout)
    hyps = hyp.read_text().splitlines()
    refs = ref.read_text().splitlines()
    assert report["BLEU"]["score"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 4)
    assert report["chrF2"]["score"] == round(sacrebleu.corpus_chrf(hyps, [refs]).score, 4)
    assert "nrefs:1" in report["BLEU"]["signature"]

    model_scored = runner.invoke(app, ["evaluate", "-m", str(reversal_run), "--src", str(src),
                                       "--ref", str(ref), "--beam", "3", "--json"])
    assert model_scored.exit_code == 0, model_scored.stderr
    assert json.loads(model_scored.stdout)["BLEU"]["score"] == report["BLEU"]["score"]


def test_evaluate_line_mismatch(runner, tmp_path):
    (tmp_path / "h").write_text("a\nb\n")
    (tmp_path / "r").write_text("a\n")
    result = runner.invoke(app, ["evaluate", "--hyp", str(tmp_path / "h"),
                                 "--ref", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert "2 lines" in result.stderr and "has 1" in result.stderr


def test_translate_pipe(tmp_path, reversal_run):
    """stdin -> stdout in a real shell pipe, through the console entry point (which leaves
    without interpreter teardown): every line arrives, nothing but translations on stdout."""
    code = "from nmt_cli.main import run; run()"
    data = "a b c\n\nd e f g h\n"
    done = subprocess.run(
        [sys.executable, "-c", code, "translate", "-m", str(reversal_run), "--beam", "2"],
        input=data.encode(), capture_output=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode().split("\n")
    assert len(out) == 4 and out[1] == "" and out[3] == ""

    many = "".join(f"{' '.join('abcdefg'[: 1 + i % 7])}\n" for i in range(300))
    (tmp_path / "in.txt").write_text(many)
    done = subprocess.run(
        [sys.executable, "-c", code, "translate", "-m", str(reversal_run), "--beam", "1",
         "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.txt")],
        capture_output=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "out.txt").read_text().splitlines()) == 300

    done = subprocess.run([sys.executable, "-c", code, "translate", "-m", str(tmp_path / "none")],
                          input=b"a\n", capture_output=True, timeout=120)
    assert done.returncode == CheckpointError.exit_code  # the error's own code survives the exit
    assert b"none: no such checkpoint" in done.stderr and b"Traceback" not in done.stderr


def test_translate_resume_continues_partial_output(runner, tmp_path, reversal_run):
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{' '.join('abcdefg'[: 3 + i % 4])}\n" for i in range(10)))
    full = tmp_path / "full.txt"
    assert runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(src),
                               "-o", str(full), "--beam", "1"]).exit_code == 0
    out = tmp_path / "out.txt"
    expected = full.read_text().splitlines(keepends=True)
    # An interrupted run left 4 complete lines and half a line behind.
    (tmp_path / "out.txt.partial").write_text("".join(expected[:4]) + "half a li")
    result = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(src),
                                 "-o", str(out), "--beam", "1", "--resume"])
    assert result.exit_code == 0, result.stderr
    assert out.read_text() == full.read_text()


def test_translate_bad_input(runner, tmp_path, reversal_run):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"a b\n\xff\n")
    result = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(bad), "-o",
                                 str(tmp_path / "o.txt")])
    assert result.exit_code != 0 and f"{bad}:2" in result.stderr
    assert not (tmp_path / "o.txt").exists()
    missing = runner.invoke(app, ["translate", "-m", str(tmp_path / "nope"), "-i", str(bad)])
    assert missing.exit_code != 0 and "nope" in missing.stderr
    wrong_task = runner.invoke(app, ["translate", "-m", str(reversal_run), "--task", "cs"],
                               input="a\n")
    assert wrong_task.exit_code != 0 and "rev" in wrong_task.stderr


def test_average(runner, tmp_path, reversal_run):
    out = tmp_path / "avg.pt"
    result = runner.invoke(app, ["-q", "average", str(reversal_run), "--last", "2", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    src = tmp_path / "in.txt"
    src.write_text("a b c\n")
    translated = runner.invoke(app, ["translate", "-m", str(out), "-i", str(src)])
    assert translated.exit_code == 0 and len(translated.stdout.splitlines()) == 1


def test_a_path_that_looks_like_markup_is_printed_as_it_is(runner, tmp_path, reversal_run):
    out = tmp_path / "[/]" / "avg[bold].pt"  # rich markup, were it read as such
    result = runner.invoke(app, ["average", str(reversal_run), "--last", "2", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert f"-> {out}" in " ".join(result.stderr.split())


def test_attention_outputs_and_curves(runner, tmp_path, reversal_run):
    src = tmp_path / "in.txt"
    src.write_text("a b c d\n\ne f g\nh i\n")
    plots, dump = tmp_path / "plots", tmp_path / "attn.json"
    result = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(src),
                                 "--beam", "2",
                                 "--attention-plot", str(plots), "--attention-json", str(dump),
                                 "--attention-lines", "2"])
    assert result.exit_code == 0, result.stderr
    records = json.loads(dump.read_text())
    assert [r["line"] for r in records] == [1]  # line 2 is empty: nothing to attend over
    weights = records[0]["weights"]
    assert len(weights) == len(records[0]["tgt"]) and len(weights[0]) == len(records[0]["src"])
    assert all(abs(sum(row) - 1.0) < 1e-4 for row in weights)
    assert (plots / "attention-00001.png").read_bytes()[:4] == b"\x89PNG"

    curves = tmp_path / "curves.png"
    done = runner.invoke(app, ["plot", str(reversal_run), "-o", str(curves)])
    assert done.exit_code == 0, done.stderr
    assert curves.read_bytes()[:4] == b"\x89PNG"
    timed = tmp_path / "time.png"
    done = runner.invoke(app, ["plot", str(reversal_run), "-o", str(timed), "--x", "time"])
    assert done.exit_code == 0, done.stderr
    assert timed.read_bytes()[:4] == b"\x89PNG" and timed.read_bytes() != curves.read_bytes()
    done = runner.invoke(app, ["plot", str(reversal_run), "-o", str(timed), "--x", "epoch"])
    assert done.exit_code == 2 and "'step'" in done.stderr and "'time'" in done.stderr


def test_translate_answers_each_line_of_an_open_pipe(reversal_run):
    """A caller that keeps stdin open gets each translation without sending more lines."""
    code = "from nmt_cli.main import run; run()"
    proc = subprocess.Popen([sys.executable, "-c", code, "translate", "-m", str(reversal_run)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in ("a b c", "d e f g"):
            proc.stdin.write(f"{line}\n".encode())
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "no answer while stdin stays open"
            answer = proc.stdout.readline()
            assert answer.endswith(b"\n") and answer.strip()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_translate_precisions(runner, tmp_path, reversal_run):
    """--precision bf16 gives one line per input line; the parser refuses an unknown precision."""
    src = tmp_path / "in.txt"
    src.write_text("a b c\n\nd e\n")
    out = tmp_path / "out.txt"
    done = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(src), "-o", str(out),
                               "--precision", "bf16"])
    assert done.exit_code == 0, done.output
    assert len(out.read_text().splitlines()) == 3
    bad = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(src),
                              "--precision", "fp8"])
    assert bad.exit_code == 2 and all(f"'{p}'" in bad.output for p in ("fp32", "bf16", "int8"))
