"""`vista init-profile`: a profile proposed from one's own events file, checked through
the loader, written for review, and used with --profile PATH for real."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from sources.loaders import load_events, split_source
from vista.cli import app
from vista.core import lake
from vista.core.config import PROJECT_ROOT, load_config
from vista.init_profile import init_profile, label_rule, timestamp_unit

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
START = pd.Timestamp("2025-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)


def clicks(users: int = 150, days: int = 60, per_user: int = 40, seed: int = 0) -> pd.DataFrame:
    """Users active over the same days, each with click-labelled events of 3 categories."""
    rng = np.random.default_rng(seed)
    n = users * per_user
    stamps = START + pd.to_timedelta(rng.uniform(0, days * 86_400, n), unit="s")
    return pd.DataFrame({
        "UserId": np.repeat(np.arange(1, users + 1), per_user),
        "ProductId": rng.integers(1, 2_000, n),
        "Category": rng.choice(["books", "toys", "games"], n),
        "when": stamps,
        "clicked": rng.integers(0, 2, n),
        "price": rng.uniform(1, 100, n).round(2),
    })  # fmt: skip


def ratings_by_year(users: int = 120, seed: int = 1) -> pd.DataFrame:
    """MovieLens-like ratings (half stars 0.5..5, epoch seconds), each user active in a
    year of their own: a global cutoff would leave most users no history before it."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, users + 1):
        first = pd.Timestamp(f"{2001 + user % 20}-03-01", tz="UTC")
        for i in range(int(rng.integers(20, 40))):
            rows.append({"userId": user, "movieId": int(rng.integers(1, 3_000)),
                         "rating": float(rng.integers(1, 11)) / 2,
                         "timestamp": int((first + i * DAY / 3).timestamp())})  # fmt: skip
    return pd.DataFrame(rows).sample(frac=1, random_state=seed)  # file order is no order


def write(frame: pd.DataFrame, path, unit: str) -> None:
    """``frame`` with its ``when`` times as epoch ``unit`` numbers or ISO text (text is
    written as it is)."""
    when = frame["when"]
    if unit == "iso" and pd.api.types.is_datetime64_any_dtype(when):
        # with an offset, as exports often write it
        when = when.dt.tz_convert("Europe/Paris").map(lambda t: t.isoformat())
    elif unit != "iso":
        when = when.dt.as_unit("ns").astype("int64") // {"s": 10**9, "ms": 10**6, "ns": 1}[unit]
    frame = frame.assign(when=when)
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False, sep=";" if path.suffix == ".txt" else ",")


def profile_text(path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    ("name", "unit"), [("clicks.csv", "ms"), ("clicks.txt", "iso"), ("clicks.jsonl", "iso"),
                       ("clicks.parquet", "ns"), ("clicks.csv.gz", "s")],
)  # fmt: skip
def test_a_click_log_gets_its_mapping_unit_label_and_a_global_cutoff(tmp_path, name, unit):
    events = clicks()
    path = tmp_path / "data" / name
    path.parent.mkdir()
    write(events, path, unit)
    out = tmp_path / "profiles" / "clicks.yaml"
    result = init_profile(path, out, now=NOW)

    cfg = load_config(str(out), environ={})
    source = cfg.source
    assert (cfg.profile, source.events_path) == ("clicks", path)
    assert source.columns == {"user_id": "UserId", "item_id": "ProductId", "timestamp": "when",
                              "category": "Category", "label": "clicked"}  # fmt: skip
    assert source.timestamp_unit == unit
    assert (source.label_column, source.label_threshold) == ("label", 1.0)
    assert source.separator == (";" if name.endswith(".txt") else ",")
    # users active over the same days: one cutoff, leaving the last ~15% as impressions
    assert source.split == "global"
    share = (events["when"] >= pd.Timestamp(source.cutoff_date, tz="UTC")).mean()
    assert 0.10 <= share <= 0.20, share
    # the windows and the ttl fit the data: every impression day reachable from the snapshot
    days = (events["when"].max().date() - source.cutoff_date).days + 1
    assert cfg.features.ttl_days == days
    assert cfg.ranker.eval_days == days // 3
    assert cfg.paths.lake == out.parent / ".state" / "clicks" / "lake"
    # the written profile ingests the whole file through the loader as checked
    good = load_events(source)
    assert len(good) == len(events)
    split = split_source(good, source)
    assert len(split.impressions) == result.checked["impressions"] == round(share * len(events))
    later = good.event_timestamp >= pd.Timestamp(source.cutoff_date, tz="UTC")
    assert split.impressions["label"].tolist() == good.loc[later, "label"].astype(int).tolist()
    # every choice is written with why, and printed
    text = out.read_text()
    assert "# the header names the user; 100% integer ids" in text
    assert "left out (not mapped): price" in text
    printed = "\n".join(result.lines())
    assert f"source.timestamp_unit: {unit}" in printed
    assert "one snapshot for everyone" in printed


def test_ratings_of_users_active_in_different_years_get_a_per_user_split(tmp_path):
    ratings = ratings_by_year()
    path = tmp_path / "ratings.csv"
    ratings.to_csv(path, index=False)
    result = init_profile(path, tmp_path / "ratings.yaml", now=NOW)

    cfg = load_config(str(tmp_path / "ratings.yaml"), environ={})
    source = cfg.source
    assert source.columns == {"user_id": "userId", "item_id": "movieId",
                              "timestamp": "timestamp", "rating": "rating"}  # fmt: skip
    assert source.timestamp_unit == "s"
    # half stars 0.5..5: the top 30% of the scale starts at 3.65, the next level is 4
    assert (source.label_column, source.label_threshold, source.event_type) == ("rating", 4.0,
                                                                                "rating")  # fmt: skip
    assert source.split == "per_user"
    assert source.cutoff_date is None
    assert cfg.features.ttl_days >= source.per_user_days > cfg.ranker.eval_days
    assert "users are active in different periods" in "\n".join(result.lines())
    split = split_source(load_events(source), source)
    assert split.counts["users_split"] == ratings["userId"].nunique()
    assert split.impressions["impression_date"].nunique() == source.per_user_days
    assert split.impressions["label"].mean() == pytest.approx(
        (ratings["rating"] >= 4).mean(), abs=0.1
    )


def test_label_rules():
    frame = pd.DataFrame({
        "stars": [1, 2, 3, 4, 5] * 4, "half": [0.5, 1.5, 3.5, 4.0, 5.0] * 4,
        "ten": list(range(1, 11)) * 2, "click": [0, 1] * 10, "price": np.linspace(1, 9, 20),
    }).astype(str)  # fmt: skip
    assert label_rule(frame[["stars"]], set())[2] == 4  # 1 + 0.7 x 4 = 3.8: the next level
    assert label_rule(frame[["half"]].rename(columns={"half": "rating"}), set())[2] == 4.0
    assert label_rule(frame[["ten"]].rename(columns={"ten": "score"}), set())[2] == 8
    name, column, threshold, _ = label_rule(frame[["stars", "click"]], set())
    assert (name, column, threshold) == ("label", "click", 1.0)  # explicit beats a rating
    assert label_rule(frame[["price"]], set()) is None


def test_timestamp_units_from_magnitudes():
    now = pd.Timestamp(NOW)
    second = 1_700_000_000
    for unit, scale in (("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)):
        values = pd.Series([str(second * scale + i) for i in range(5)], dtype=object)
        assert timestamp_unit(values, now)[0] == unit
    assert timestamp_unit(pd.Series(["2024-05-01T10:00:00+02:00"] * 3), now)[0] == "iso"
    assert timestamp_unit(pd.Series(pd.to_datetime(["2024-05-01"] * 3)), now)[0] == "iso"
    assert timestamp_unit(pd.Series(["12", "13", "400"]), now) is None  # a counter
    assert timestamp_unit(pd.Series(["05/01/2024 10:00"] * 3), now) is None  # not ISO
    assert timestamp_unit(pd.Series(["10000000000"] * 3), now) is None  # 2286 in s, 1970 in ms


def test_movielens_itself_gets_the_shipped_mapping_and_a_per_user_split(tmp_path):
    path = PROJECT_ROOT / ".state" / "data" / "ml-100k" / "ml-100k.inter"
    if not path.exists():
        pytest.skip("MovieLens-100K not installed: run `make movielens`")
    result = init_profile(path, tmp_path / "ml.yaml", now=NOW)
    cfg = load_config(str(tmp_path / "ml.yaml"), environ={})
    shipped = load_config("movielens", environ={}).source
    assert cfg.source.columns == shipped.columns
    assert (cfg.source.separator, cfg.source.timestamp_unit) == ("\t", "s")
    assert (cfg.source.label_column, cfg.source.label_threshold) == ("rating", 4.0)
    # most MovieLens users rate within days of joining, in different months of 7: a
    # global cutoff would leave most impressions without history (the shipped
    # movielens-per-user profile's reason)
    assert cfg.source.split == "per_user"
    assert result.rows_in_file == result.rows_sampled == 100_000
    assert 0.2 <= result.checked["impressions"] / 100_000 < 0.25
    assert result.checked["quarantined"] == 0


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_files_it_cannot_profile_fail_in_one_line_saying_why(tmp_path):
    frame = clicks(users=10, days=30, per_user=10)
    write(frame.assign(UserId=[f"A{u}X" for u in frame.UserId]), tmp_path / "names.csv", "s")
    assert "column 'UserId' names the user" in one_line_error(
        ["init-profile", str(tmp_path / "names.csv"), "--out", str(tmp_path / "a.yaml")]
    )
    write(frame, tmp_path / "events.csv", "s")
    lines = (tmp_path / "events.csv").read_text().splitlines()[1:]
    (tmp_path / "headless.csv").write_text("\n".join(lines) + "\n")
    assert "is data, not a header" in one_line_error(
        ["init-profile", str(tmp_path / "headless.csv"), "--out", str(tmp_path / "b.yaml")]
    )
    write(frame.assign(when=START), tmp_path / "one_day.csv", "s")
    assert "fall on 1 day(s)" in one_line_error(
        ["init-profile", str(tmp_path / "one_day.csv"), "--out", str(tmp_path / "c.yaml")]
    )
    write(frame.assign(when=frame["when"].dt.strftime("%d/%m/%Y")), tmp_path / "dmy.csv", "iso")
    assert "column 'when' names the time but holds neither" in one_line_error(
        ["init-profile", str(tmp_path / "dmy.csv"), "--out", str(tmp_path / "d.yaml")]
    )
    assert "does not exist" in one_line_error(["init-profile", str(tmp_path / "nope.csv")])
    (tmp_path / "e.yaml").write_text("kept: true\n")
    assert "pass --force" in one_line_error(
        ["init-profile", str(tmp_path / "events.csv"), "--out", str(tmp_path / "e.yaml")]
    )
    assert (tmp_path / "e.yaml").read_text() == "kept: true\n"
    # nothing half-written is left behind by a failure
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == ["e.yaml"]


def vista(*args: str, cwd) -> subprocess.CompletedProcess:
    """The `vista` command as a user runs it, in its own process."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("VISTA")}
    return subprocess.run([sys.executable, "-m", "vista.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_init_profile_then_ingest_with_the_profile_file(tmp_path):
    """Bring your own data without editing the repo: write a profile beside the data, then
    `vista ingest-events --profile path/to/it.yaml` ingests the file into that profile's own
    lake (no Spark)."""
    events = clicks(users=40, days=30, per_user=20)
    (tmp_path / "mydata").mkdir()
    write(events, tmp_path / "mydata" / "clicks.csv", "ms")
    made = vista("init-profile", "mydata/clicks.csv", "--out", "mydata/mine.yaml", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "wrote mydata/mine.yaml (profile 'mine')" in made.stdout
    assert profile_text(tmp_path / "mydata" / "mine.yaml")["source"]["events_path"] == "clicks.csv"

    ingest = vista("generate", "--profile", "mydata/mine.yaml", cwd=tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    result = json.loads(ingest.stdout)
    assert (result["generated"], result["events"], result["quarantined"]) == (True, 800, 0)
    lake_dir = tmp_path / "mydata" / ".state" / "mine" / "lake"
    assert lake.read_arrow(lake_dir / "events").num_rows == 800
    assert lake.read_arrow(lake_dir / "impressions").num_rows == result["impressions"] > 0

    shown = vista("config", "-p", str(tmp_path / "mydata" / "mine.yaml"), cwd=PROJECT_ROOT)
    config = json.loads(shown.stdout)
    assert (config["profile"], config["paths"]["lake"]) == ("mine", str(lake_dir))
    assert not (PROJECT_ROOT / ".state" / "mine").exists()  # nothing in the repo
