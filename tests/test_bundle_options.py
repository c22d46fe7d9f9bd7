from pathlib import Path

import pytest

from nmt.bundle_options import PreprocessOptions
from nmt.errors import ConfigError


def _options(**kwargs) -> PreprocessOptions:
    return PreprocessOptions(**{"src": "en", "tgt": ("de", "fr"), "out": Path("b"), **kwargs})


def test_joint_or_separate_follows_the_tokenizer_and_the_given_files() -> None:
    assert (_options().is_joint, _options().is_joint_vocab) == (True, True)
    word = _options(tokenizer="word")
    assert (word.is_joint, word.is_joint_vocab) == (False, False)
    assert _options(tokenizer="word", vocab="v").is_joint_vocab is True
    per_side = _options(src_spm_model="s", tgt_spm_model=("t",))
    assert (per_side.is_joint, per_side.is_joint_vocab) == (False, False)
    assert _options(spm_model="m", src_vocab="s").is_joint_vocab is False
    assert _options(spm_model="m", joint_vocab=False).is_joint is True


def test_given_files_per_side() -> None:
    assert _options(spm_model="m").given_models == dict.fromkeys(("src", "de", "fr"), Path("m"))
    assert _options(tgt_vocab=("t",)).given_vocabs == {"de": Path("t"), "fr": Path("t")}
    both = _options(src_vocab="s", tgt_vocab=("d", "f")).given_vocabs
    assert both == {"src": Path("s"), "de": Path("d"), "fr": Path("f")}
    assert _options().given_models == {} == _options().given_vocabs


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"spm_model": "m", "src_spm_model": "m"}, "--spm-model .* not both"),
        ({"vocab": "v", "tgt_vocab": ("v",)}, "--vocab .* not both"),
        ({"spm_model": "m", "joint": False}, "--spm-model is one file for every side"),
        ({"src_spm_model": "m", "joint": True}, "give --spm-model"),
        ({"vocab": "v", "joint_vocab": False}, "give --src-vocab/--tgt-vocab"),
        ({"tgt_vocab": ("v", "v", "v")}, "--tgt-vocab names 3 files for the targets de,fr"),
        ({"spm_model": "m", "tokenizer": "word"}, "needs --tokenizer subword"),
    ],
)
def test_given_options_that_disagree(given: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _options(**given).check()
