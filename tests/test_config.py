import tomllib

import pytest

from nmt.config import dump_toml, load_file, resolve, to_dict
from nmt.errors import ConfigError


def test_layers_override_in_order():
    model, train = resolve({"emb-size": 128, "lr": 0.1}, {"lr": 0.2, "emb_size": None})
    assert model.emb_size == 128  # None means "not given": the earlier layer stands
    assert train.lr == 0.2


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        resolve({"hiden-size": 3})
    message = str(err.value)
    assert "hiden-size" in message and "hidden-size" in message and "emb-size" in message


def test_wrong_type_and_choice_are_errors():
    with pytest.raises(ConfigError, match="emb-size"):
        resolve({"emb-size": "big"})
    with pytest.raises(ConfigError, match="lstm"):
        resolve({"cell": "transformer"})
    with pytest.raises(ConfigError, match="tie-embeddings"):
        resolve({"tie-embeddings": "yes"})


def test_dump_round_trips_through_toml(tmp_path):
    model, train = resolve({"emb-size": 64, "tasks": 'de,"fr"', "dropout": 0.25})
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(to_dict(model, train)))
    assert resolve(load_file(path)) == (model, train)
    assert tomllib.loads(path.read_text())["emb-size"] == 64


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config"):
        load_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("emb-size = = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_file(bad)


@pytest.mark.parametrize(("key", "value"), [("dropout", 1.0), ("enc-dropout", -0.1),
                                            ("word-dropout", 1.0), ("out-dropout", -0.5),
                                            ("out-dropout", 1.0)])
def test_dropout_rates_out_of_range_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        resolve({key: value})


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_sampling_rate_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match="sampling-rate"):
        resolve({"sampling-rate": value})


def test_scheduled_sampling_needs_the_runs_length():
    with pytest.raises(ConfigError, match="max-steps or max-epochs"):
        resolve({"sampling-rate": 0.2, "max-steps": 0, "max-epochs": 0})


def test_out_dropout_is_off_by_default():
    """By default the output layer reads the fed (--dropout) vector; --out-dropout adds its own."""
    from nmt.model import build_model

    model = build_model(resolve({"dropout": 0.2})[0], 10, {"de": 9})
    assert model.decoders["de"].out_dropout is None
    model = build_model(resolve({"dropout": 0.2, "out-dropout": 0.5})[0], 10, {"de": 9})
    assert (model.decoders["de"].out_dropout.p, model.decoders["de"].dropout.p) == (0.5, 0.2)
