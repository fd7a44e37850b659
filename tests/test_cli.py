"""The `vista` CLI: bad input fails before any work, with the field and its range."""

from typer.testing import CliRunner

from vista.cli import app

runner = CliRunner()


def test_help_lists_the_pipeline_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest-events", "build-histories", "summarize", "publish-features",
                    "train-and-evaluate-ranker", "dag-test", "evaluate-and-report", "ablate",
                    "feast-repo"):  # fmt: skip
        assert command in result.output


def test_every_step_has_a_command_of_its_own_name_and_old_names_still_work():
    """One name per stage: the step, its DAG task (tests/test_layout.py) and its command."""
    import typer

    from vista import pipeline

    commands = typer.main.get_command(app).commands
    for step in pipeline.STEPS:
        assert step.replace("_", "-") in commands, step
    old = {"generate": "ingest-events", "histories": "build-histories",
           "features": "publish-features", "train-ranker": "train-and-evaluate-ranker",
           "report": "evaluate-and-report"}  # fmt: skip
    gone = runner.invoke(app, ["env"])
    assert gone.exit_code == 2
    assert "vista feast-repo" in gone.output
    for name, new in old.items():
        assert commands[name].hidden
        assert commands[name].callback.__name__ == commands[new].callback.__name__


def test_generator_argument_out_of_range_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("VISTA__PATHS__LAKE", str(tmp_path / "lake"))
    result = runner.invoke(app, ["generate", "--profile", "tiny", "--users", "3"])
    assert result.exit_code == 2
    assert "generator.n_users = 3" in result.output
    assert "greater than or equal to 10" in result.output
    assert not (tmp_path / "lake").exists()


def test_malformed_environment_override_is_named(monkeypatch):
    monkeypatch.setenv("VISTA__SUMMARIZER__N_HEADS", "many")
    result = runner.invoke(app, ["cutoff-date", "--profile", "tiny"])
    assert result.exit_code == 2
    assert "summarizer.n_heads = 'many'" in result.output


def test_bad_as_of_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("VISTA__PATHS__LAKE", str(tmp_path / "lake"))
    result = runner.invoke(app, ["histories", "--profile", "tiny", "--as-of", "yesterday"])
    assert result.exit_code == 2
    assert "as_of must be a date" in result.output


def test_generate_writes_tables_then_skips_when_unchanged(tmp_path, monkeypatch):
    for key in ("STATE", "LAKE", "REPORTS"):
        monkeypatch.setenv(f"VISTA__PATHS__{key}", str(tmp_path / key.lower()))
    first = runner.invoke(app, ["generate", "--profile", "tiny"])
    assert first.exit_code == 0, first.output
    assert '"generated": true' in first.output
    second = runner.invoke(app, ["generate", "--profile", "tiny"])
    assert '"generated": false' in second.output
    third = runner.invoke(app, ["generate", "--profile", "tiny", "--seed", "3"])
    assert '"generated": true' in third.output


def test_unpause_names_a_dag_outside_the_chain_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("VISTA__PATHS__STATE", str(tmp_path / "state"))
    result = runner.invoke(app, ["unpause", "vista_ingest", "vista_ranking", "--profile", "tiny"])
    assert result.exit_code == 2
    assert "not a DAG of the chain: vista_ranking (the chain: vista_ingest," in result.output
    assert not (tmp_path / "state").exists()  # no Airflow database was made
