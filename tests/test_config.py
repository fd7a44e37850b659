from pathlib import Path

import pytest

from vista.core.config import ConfigError, is_profile_file, load_config


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
    from vista.core.config import CONF_DIR

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


# ---------------------------------------------------------------- profile files anywhere
def write_profile(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


MINE = """
source:
  events_path: data/events.csv
  columns: {user_id: uid, item_id: iid, timestamp: ts}
  cutoff_date: "2026-01-03"
summarizer:
  n_seeds: 8
paths:
  state: .state/mine
  lake: /abs/lake
"""


def test_a_profile_file_anywhere_is_laid_over_local(tmp_path):
    path = write_profile(tmp_path / "profiles" / "mine.yaml", MINE)
    cfg = load_config(str(path), environ={"VISTA__RANKER__EPOCHS": "4"})
    local = load_config("local", environ={})
    assert (cfg.profile, cfg.profile_file) == ("mine", path.resolve())
    assert cfg.summarizer.n_seeds == 8  # from the file
    assert cfg.summarizer.dim == local.summarizer.dim  # inherited from local.yaml
    assert cfg.ranker.epochs == 4  # the environment over the file
    # relative paths in the file are taken from its own folder; local.yaml's from the repo
    assert cfg.source.events_path == tmp_path / "profiles" / "data" / "events.csv"
    assert cfg.paths.state == tmp_path / "profiles" / ".state" / "mine"
    assert cfg.paths.lake == Path("/abs/lake")
    assert cfg.paths.reports == local.paths.reports
    # a .yml, and a path relative to the working folder, name files too
    yml = write_profile(tmp_path / "other.yml", "summarizer: {n_seeds: 4}\n")
    assert load_config(str(yml), environ={}).profile == "other"


def test_a_relative_profile_path_and_the_variable_name_a_file(tmp_path, monkeypatch):
    write_profile(tmp_path / "sub" / "mine.yaml", MINE)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={"VISTA_PROFILE": "sub/mine.yaml"})
    assert cfg.profile_file == tmp_path / "sub" / "mine.yaml"
    assert cfg.profile_ref == str(tmp_path / "sub" / "mine.yaml")
    assert load_config("tiny", environ={}).profile_ref == "tiny"  # names stay names


def test_which_profile_values_are_files():
    for name in ("local", "movielens-per-user", "tiny"):
        assert not is_profile_file(name)
    for path in ("mine.yaml", "mine.yml", "conf/tiny", "./x", "/abs/p.yaml"):
        assert is_profile_file(path)


def test_airflow_tasks_get_the_profile_file_not_its_name(tmp_path):
    """Every DAG task loads the configuration again from $VISTA_PROFILE: it must find the
    file, wherever the task runs."""
    from vista import airflow_runner

    path = write_profile(tmp_path / "mine.yaml", MINE)
    cfg = load_config(str(path), environ={})
    env = airflow_runner.airflow_environment(cfg)
    assert env["VISTA_PROFILE"] == str(path.resolve())
    assert load_config(environ={"VISTA_PROFILE": env["VISTA_PROFILE"]}) == cfg


def test_a_missing_or_bad_profile_file_fails_in_one_line_naming_it(tmp_path):
    from typer.testing import CliRunner

    from vista.cli import app

    missing = tmp_path / "nope" / "mine.yaml"
    with pytest.raises(ConfigError, match=rf"profile file {missing} does not exist"):
        load_config(str(missing), environ={})
    result = CliRunner().invoke(app, ["config", "--profile", str(missing)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert str(missing) in lines[0]
    assert "init-profile" in lines[0]
    bad = write_profile(tmp_path / "bad.yaml", "- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(str(bad), environ={})
    wrong = write_profile(tmp_path / "wrong.yaml", "ranker: {eval_days: 0}\n")
    with pytest.raises(ConfigError, match=r"ranker\.eval_days = 0"):
        load_config(str(wrong), environ={})


def test_day_limits_hold_what_real_data_sets_need():
    """Decades of data: an evaluation window of more than a year and a ttl of more than
    ten years are valid; a century is the sanity bound, named when crossed."""
    cfg = load_config("tiny", overrides={"ranker": {"eval_days": 400},
                                         "features": {"ttl_days": 5000}}, environ={})  # fmt: skip
    assert (cfg.ranker.eval_days, cfg.features.ttl_days) == (400, 5000)
    with pytest.raises(ConfigError, match=r"features\.ttl_days = 40000: .*36500"):
        load_config("tiny", overrides={"features": {"ttl_days": 40_000}}, environ={})
