import pytest

from vista.config import ConfigError, load_config


def test_local_profile_loads_and_resolves_paths():
    cfg = load_config("local", environ={})
    assert cfg.profile == "local"
    assert cfg.paths.lake.is_absolute()
    assert cfg.summarizer.dim % cfg.summarizer.n_heads == 0


def test_profile_is_laid_over_local_and_env_over_profile():
    env = {"VISTA__GENERATOR__N_USERS": "333", "VISTA__SUMMARIZER__N_SEEDS": "8"}
    cfg = load_config("tiny", environ=env)
    assert cfg.generator.n_users == 333
    assert cfg.summarizer.n_seeds == 8
    assert cfg.summarizer.dim == 16  # from tiny.yaml
    assert cfg.ranker.lr == load_config("local", environ={}).ranker.lr  # inherited


def test_out_of_range_value_names_field_and_range():
    with pytest.raises(ConfigError) as err:
        load_config("tiny", overrides={"generator": {"n_users": 3}}, environ={})
    assert "generator.n_users" in str(err.value)
    assert "greater than or equal to 10" in str(err.value)


def test_malformed_value_and_unknown_field_are_named():
    with pytest.raises(ConfigError, match=r"summarizer\.dim = 'wide'"):
        load_config("tiny", overrides={"summarizer": {"dim": "wide"}}, environ={})
    with pytest.raises(ConfigError, match=r"ranker\.epoch"):
        load_config("tiny", overrides={"ranker": {"epoch": 3}}, environ={})


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="min_history"):
        load_config("tiny", overrides={"generator": {"min_history": 50, "max_history": 10}},
                    environ={})  # fmt: skip
    with pytest.raises(ConfigError, match="divisible by n_heads"):
        load_config("tiny", overrides={"summarizer": {"dim": 18, "n_heads": 4}}, environ={})


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ConfigError, match="known profiles"):
        load_config("nope", environ={})


def test_every_shipped_profile_validates():
    from vista.config import CONF_DIR

    for path in CONF_DIR.glob("*.yaml"):
        cfg = load_config(path.stem, environ={})
        assert cfg.profile == path.stem
    full = load_config("full", environ={})
    assert full.generator.max_history == 1_000_000
    assert full.summarizer.n_seeds == 128


def test_evaluation_section_defaults_and_ranges():
    cfg = load_config("tiny", environ={})
    assert (cfg.evaluation.resamples, cfg.evaluation.confidence) == (1000, 0.95)
    assert list(cfg.to_dict()).index("evaluation") == list(cfg.to_dict()).index("ranker") + 1
    for field, bad, message in (("resamples", 10, "greater than or equal to 100"),
                                ("confidence", 1.0, "less than 1"),
                                ("min_users", 1, "greater than or equal to 2")):  # fmt: skip
        with pytest.raises(ConfigError, match=rf"evaluation\.{field} = {bad}: .*{message}"):
            load_config("tiny", overrides={"evaluation": {field: bad}}, environ={})
    with pytest.raises(ConfigError, match=r"evaluation\.resample"):
        load_config("tiny", overrides={"evaluation": {"resample": 5}}, environ={})
