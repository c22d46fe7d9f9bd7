import pytest
import torch

from nmt.embeddings import Embeddings, load_vectors
from nmt.errors import DataError
from nmt.vocab import PAD, SPECIALS

VOCAB = [*SPECIALS, "house", "cat", "dog"]


def write(tmp_path, text, name="vectors.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_glove_without_header(tmp_path):
    path = write(tmp_path, "cat 1 2 3\nbird 7 8 9\nhouse 0.5 -1 2e-1\ncat 9 9 9\n")
    weight, found = load_vectors(path, VOCAB, 3)
    assert found == 2
    assert weight.shape == (len(VOCAB), 3)
    assert weight[VOCAB.index("cat")].tolist() == [1, 2, 3]  # first occurrence wins
    assert torch.allclose(weight[VOCAB.index("house")], torch.tensor([0.5, -1.0, 0.2]))
    assert weight[PAD].abs().sum() == 0
    dog = weight[VOCAB.index("dog")]
    assert dog.abs().max() <= 0.1 and dog.abs().sum() > 0  # random init kept


def test_word2vec_with_header(tmp_path):
    path = write(tmp_path, "2 2\ndog 0.25 4\n<unk> 1 1\n")
    weight, found = load_vectors(path, VOCAB, 2)
    assert found == 2
    assert weight[VOCAB.index("dog")].tolist() == [0.25, 4.0]
    assert weight[VOCAB.index("<unk>")].tolist() == [1.0, 1.0]


def test_header_dimension_mismatch(tmp_path):
    path = write(tmp_path, "2 5\ndog 1 2 3 4 5\n")
    with pytest.raises(DataError, match=r"vectors\.txt:1: .*dimension 5, expected 3"):
        load_vectors(path, VOCAB, 3)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("cat 1 2 3\ndog 1 2\n", 2),  # too few numbers
        ("cat 1 2 3\nbird 1 2 3 4\n", 2),  # too many, even for a word outside the vocabulary
        ("cat 1 2 3\nhouse 1 x 3\n", 2),  # not a number
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, line):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as err:
        load_vectors(path, VOCAB, 3)
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_vectors(tmp_path / "absent.txt", VOCAB, 3)


def test_embeddings_load_and_freeze():
    emb = Embeddings(len(VOCAB), 3)
    vectors = torch.randn(len(VOCAB), 3)
    emb.load(vectors, freeze=True)
    assert not emb.weight.requires_grad
    assert emb.weight[PAD].abs().sum() == 0
    assert torch.equal(emb.weight[1:], vectors[1:])
    emb.load(vectors, freeze=False)
    assert emb.weight.requires_grad


def test_pad_row_gets_no_gradient():
    emb = Embeddings(len(VOCAB), 3)
    emb(torch.tensor([[PAD, 4, 5]])).sum().backward()
    assert emb.weight.grad[PAD].abs().sum() == 0
    assert emb.weight.grad[4].abs().sum() > 0
