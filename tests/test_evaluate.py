import pytest
import sacrebleu

from nmt.errors import DataError
from nmt.evaluate import score_files, score_lines

HYPS = ["The cat sat on the mat .", "A dog runs in the park", "Hello world"]
REFS = ["The cat sat on the mat.", "A dog is running in the park", "Hello, world!"]


def test_scores_equal_sacrebleu_own():
    bleu, chrf = score_lines(HYPS, REFS)
    assert bleu.score == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert chrf.score == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert bleu.signature.startswith("nrefs:1|case:mixed")


def test_line_count_mismatch_names_both_files(tmp_path):
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("a\nb\n")
    ref.write_text("a\n")
    with pytest.raises(DataError) as err:
        score_files(hyp, ref)
    assert str(hyp) in str(err.value) and str(ref) in str(err.value)
