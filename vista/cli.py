"""`vista`: the command line. Each command is one call into vista.pipeline.

Long because it holds every command (a thin function each, with its help text) and the
one failure handler they share.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from vista.core import errors
from vista.core.config import load_config
from vista.core.snapshot import Snapshot, snapshots_between


class _Commands(TyperGroup):
    """Every command runs through here, so that failures end the same way everywhere: an
    expected one (vista.core.errors) with one line naming the problem and its fix, exit status
    2 (--debug: its traceback first); anything else, a bug, with its traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not errors.is_expected(exc):
                raise
            if ctx.params.get("debug"):
                traceback.print_exc()
            typer.echo(errors.describe(exc), err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands,
    help="VISTA platform: lifelong user histories -> summary tokens -> Feast -> ranker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="VISTA_DEBUG",
            help="on an expected failure, also print its traceback; show library warnings",
        ),
    ] = False,
) -> None:
    # libraries' deprecation and "experimental" warnings would bury the one line a
    # failure ends with; --debug (or an explicit PYTHONWARNINGS / -W) shows them
    if not debug and not sys.warnoptions:
        warnings.simplefilter("ignore")
    if debug:  # Spark's JVM then writes to the terminal too (spark_jobs/session.py)
        os.environ["VISTA_DEBUG"] = "1"


Profile = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="a name in conf/ or the path of a profile file (a .yaml anywhere; `vista "
        "init-profile` writes one); default $VISTA_PROFILE or local",
    ),
]
Host = Annotated[
    str, typer.Option(help="address to listen on (0.0.0.0 to reach it from elsewhere)")
]
AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="snapshot YYYY-MM-DD or YYYY-MM-DDTHH, UTC (default: data cutoff)"
    ),
]


def _config(profile: str | None, overrides: dict | None = None):
    return load_config(profile, overrides=overrides)


def _as_of(cfg, as_of: str | None):
    from vista import pipeline

    return Snapshot.of(as_of or pipeline.default_as_of(cfg), cfg.snapshots.every_hours)


def _print(result) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


# Each step of vista.pipeline.STEPS has a command of the same name (dashes for
# underscores), as its DAG task has; the names commands had before stay as hidden aliases.
def _alias(old: str, command) -> None:
    app.command(old, hidden=True)(command)


@app.command("ingest-events")
def ingest_events(
    profile: Profile = None,
    users: Annotated[int | None, typer.Option(help="number of users")] = None,
    items: Annotated[int | None, typer.Option(help="number of items")] = None,
    max_history: Annotated[int | None, typer.Option(help="longest history (events)")] = None,
    heavy_users: Annotated[int | None, typer.Option(help="users with exactly max-history")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    force: Annotated[bool, typer.Option(help="rewrite even if the data exists")] = False,
) -> None:
    """Write the `events` and `impressions` Delta tables: synthetic (with the oracle), or
    ingested from the profile's source (bad rows to `quarantine`)."""
    given = {
        "n_users": users,
        "n_items": items,
        "max_history": max_history,
        "heavy_users": heavy_users,
        "seed": seed,
    }
    overrides = {"generator": {k: v for k, v in given.items() if v is not None}}
    cfg = _config(profile, overrides)
    from vista import pipeline

    _print(pipeline.ingest_events(cfg, force=force))


_alias("generate", ingest_events)


def _step(name: str, profile: str | None, as_of: str | None, **kwargs) -> None:
    from vista import pipeline

    cfg = _config(profile)
    _print(pipeline.STEPS[name](cfg, _as_of(cfg, as_of), **kwargs))


Full = Annotated[
    bool, typer.Option("--full", help="rebuild from scratch instead of from the last snapshot")
]


@app.command("validate-events")
def validate_events(profile: Profile = None, as_of: AsOf = None) -> None:
    """Run the critical `events` suite on the date's events (Data Docs in the report)."""
    _step("validate_events", profile, as_of)


@app.command("build-histories")
def build_histories(profile: Profile = None, as_of: AsOf = None, full: Full = False) -> None:
    """Build per-user histories as of a date (Spark) into `user_histories`."""
    _step("build_histories", profile, as_of, full=full)


_alias("histories", build_histories)


@app.command("validate-histories")
def validate_histories(profile: Profile = None, as_of: AsOf = None) -> None:
    """Run the critical `user_histories` suite on the date's snapshot."""
    _step("validate_histories", profile, as_of)


@app.command("build-raw-features")
def build_raw_features(profile: Profile = None, as_of: AsOf = None) -> None:
    """Build the baselines' raw-history features (`user_history_tail`,
    `user_category_histories`) from the date's histories."""
    _step("build_raw_features", profile, as_of)


@app.command("train-summarizer")
def train_summarizer(
    profile: Profile = None,
    as_of: AsOf = None,
    retrain: Annotated[bool, typer.Option(help="train even if a current one exists")] = False,
) -> None:
    """Train the summarizer with a target-attention head; save it frozen."""
    _step("train_summarizer", profile, as_of, retrain=retrain)


@app.command()
def summarize(profile: Profile = None, as_of: AsOf = None, full: Full = False) -> None:
    """Summarize histories into `user_summaries` (Spark + PyTorch UDF)."""
    _step("summarize", profile, as_of, full=full)


@app.command("validate-summaries")
def validate_summaries(profile: Profile = None, as_of: AsOf = None) -> None:
    """Run the critical `user_summaries` suite and the drift check against the previous
    snapshot (warns)."""
    _step("validate_summaries", profile, as_of)


@app.command()
def validate(profile: Profile = None, as_of: AsOf = None) -> None:
    """Run the Great Expectations suites on events, histories and summaries; build Data
    Docs."""
    _step("validate_events", profile, as_of)
    _step("validate_histories", profile, as_of)
    _step("validate_summaries", profile, as_of)


@app.command("publish-features")
def publish_features(profile: Profile = None, as_of: AsOf = None) -> None:
    """feast apply + materialize the summaries into the online store."""
    _step("publish_features", profile, as_of)


_alias("features", publish_features)


@app.command("train-and-evaluate-ranker")
def train_and_evaluate_ranker(profile: Profile = None, as_of: AsOf = None) -> None:
    """Train ranker_v1 on the Feast training set; evaluate on the later window."""
    _step("train_and_evaluate_ranker", profile, as_of)


_alias("train-ranker", train_and_evaluate_ranker)


@app.command()
def run(
    profile: Profile = None,
    as_of: AsOf = None,
    evaluate: Annotated[
        bool, typer.Option(help="also compare the baselines (vista evaluate-and-report)")
    ] = True,
) -> None:
    """Every step in order, in this process (the DAG runs the same calls), then the run
    summary (reports/<as_of>/run.json)."""
    from vista import pipeline

    cfg = _config(profile)
    date = _as_of(cfg, as_of)
    pipeline.check_snapshot(cfg, date)
    for name in pipeline.RUN_STEPS:
        if name == "evaluate_and_report" and not evaluate:
            continue
        typer.echo(f"-- {name}", err=True)
        pipeline.record_step(cfg, date, name, pipeline.STEPS[name](cfg, date))
    path = Path(pipeline.write_run_summary(cfg, date)["path"])
    typer.echo(pipeline.format_run_summary(pipeline.read_run_summary(path.parent)))


@app.command("write-run-summary")
def write_run_summary(profile: Profile = None, as_of: AsOf = None) -> None:
    """Gather the steps recorded for the date into reports/<as_of>/run.json (and
    reports/latest/run.json) and print its headline."""
    from vista import pipeline

    cfg = _config(profile)
    path = Path(pipeline.write_run_summary(cfg, _as_of(cfg, as_of))["path"])
    typer.echo(pipeline.format_run_summary(pipeline.read_run_summary(path.parent)))
    typer.echo(f"run summary: {path}")


@app.command("evaluate-and-report")
def evaluate_and_report(profile: Profile = None, as_of: AsOf = None) -> None:
    """Train VISTA and the raw-history baselines (DIN, SIM, full attention) x seeds on the
    Feast evaluation set; write reports/<as_of>/report.md with tables and plots."""
    from vista import pipeline

    cfg = _config(profile)
    result = pipeline.evaluate_and_report(cfg, _as_of(cfg, as_of))
    for name, by_bucket in result["auc_by_bucket"].items():
        cells = "  ".join(f"{b} {v:.4f}" for b, v in by_bucket.items())
        typer.echo(f"{name:<16} AUC  {cells}")
    typer.echo(f"report: {result['files']['report']}")


_alias("report", evaluate_and_report)


@app.command("ablate")
def ablate(
    profile: Profile = None,
    as_of: AsOf = None,
    arm: Annotated[
        list[str] | None, typer.Option(help="only these arms (default: all; baseline first)")
    ] = None,
) -> None:
    """VISTA ablations (reconstruction loss on/off, K = 32/64/128, summaries 1 and 3 days
    stale), each arm in its own state folder: reports/<as_of>/ablations.md."""
    from vista import ablations, state

    cfg = _config(profile)
    date = _as_of(cfg, as_of)
    result = ablations.run_ablations(cfg, date, only=arm)
    files = ablations.write_ablations(state.report_dir(cfg, date), result)
    typer.echo(ablations.render_ablations(result))
    typer.echo(f"ablations: {files['ablations']}")


@app.command("probe")
def probe(
    profile: Profile = None,
    as_of: AsOf = None,
    length: Annotated[
        list[int] | None,
        typer.Option(help="probe history lengths (default probe.lengths; deeper depths dropped)"),
    ] = None,
    depth: Annotated[list[int] | None, typer.Option(help="needle depths (probe.depths)")] = None,
    users: Annotated[
        int | None, typer.Option(help="probe users at every length (probe.users and min_users)")
    ] = None,
) -> None:
    """Linear probes on the current summarizer's frozen summaries: event counts per
    category, planted needle items by depth, days since a category's last event, against
    history length and beside the last-100 baseline: reports/<as_of>/probes.md."""
    from vista import probing, state

    base = _config(profile).probe
    given: dict = {"lengths": length, "depths": depth, "users": users}
    if length and not depth:
        # shorter lengths than the profile's: keep the depths that still fit
        given["depths"] = [d for d in base.depths if d <= max(length)] or [1]
    if users is not None:
        given["min_users"] = users
    cfg = _config(profile, {"probe": {k: v for k, v in given.items() if v is not None}})
    date = _as_of(cfg, as_of)
    result = probing.run_probes(cfg, date)
    files = probing.write_probes(state.report_dir(cfg, date), result)
    typer.echo(probing.render_probe_table(result))
    typer.echo(f"probes: {files['probes']}")


@app.command("online")
def online(
    user_ids: Annotated[list[int], typer.Argument(help="user ids to look up")],
    profile: Profile = None,
) -> None:
    """Read users' summary tokens from the online store (as a ranking service would)."""
    from vista import features as feast_features

    store = feast_features.feature_store(_config(profile))
    result = feast_features.online_summaries(store, user_ids)
    for i, user in enumerate(user_ids):
        vector = result["summary"][i]
        shown = "none" if vector is None else f"{len(vector)} floats, first {vector[:3]}"
        typer.echo(
            f"user {user}: history_length={result['history_length'][i]} "
            f"version={result['summarizer_version'][i]} summary={shown}"
        )


def _run_chain(cfg, as_of: Snapshot, params: dict) -> None:
    from vista import airflow_runner

    date = as_of.iso
    log_dir = cfg.paths.state / "logs" / f"dags_test_{date}"

    def started(dag_id: str) -> None:
        log = log_dir / f"{dag_id}.log"
        typer.echo(f"running DAG {dag_id} for as_of {date} (log: {log}) ...", err=True)

    failed = airflow_runner.run_chain(cfg, as_of.logical_date, log_dir, params, started)
    if failed is not None:
        log = log_dir / f"{failed}.log"
        lines = log.read_text().splitlines() if log.exists() else []
        typer.echo("\n".join(lines[-60:]), err=True)
        typer.echo(f"error: DAG {failed} failed for as_of {date}; full log: {log}", err=True)
        raise typer.Exit(1)


@app.command("dag-test")
def dag_test(
    profile: Profile = None,
    as_of: AsOf = None,
    full_rebuild: Annotated[bool, typer.Option(help="DAG param full_rebuild")] = False,
    retrain_summarizer: Annotated[bool, typer.Option(help="DAG param retrain_summarizer")] = False,
    evaluate: Annotated[bool, typer.Option(help="DAG param evaluate (baselines + report)")] = False,
    regenerate: Annotated[bool, typer.Option(help="DAG param regenerate")] = False,
) -> None:
    """Run the DAG chain (ingest -> histories -> summaries -> features -> ranker) for one
    date with `airflow dags test`, in order, as asset-triggered runs would."""
    from vista import pipeline, state

    cfg = _config(profile)
    date = _as_of(cfg, as_of)
    pipeline.check_snapshot(cfg, date, full=full_rebuild)
    params = {"full_rebuild": full_rebuild, "retrain_summarizer": retrain_summarizer,
              "evaluate": evaluate, "regenerate": regenerate}  # fmt: skip
    _run_chain(cfg, date, {k: v for k, v in params.items() if v})
    run = pipeline.read_run_summary(state.report_dir(cfg, date))
    typer.echo(pipeline.format_run_summary(run))
    typer.echo(f"run summary: {cfg.paths.reports / 'latest' / pipeline.RUN_SUMMARY_FILE}")
    _warn_paused(cfg)


def _warn_paused(cfg) -> None:
    # `dags test` runs a paused DAG all the same; a scheduler (`vista airflow-ui`) does not
    from vista import airflow_runner

    if notice := airflow_runner.paused_notice(cfg):
        typer.echo(notice, err=True)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="first snapshot, YYYY-MM-DD or YYYY-MM-DDTHH")],
    end: Annotated[
        str, typer.Option(help="last snapshot (inclusive), YYYY-MM-DD or YYYY-MM-DDTHH")
    ],
    profile: Profile = None,
    full_rebuild: Annotated[bool, typer.Option(help="DAG param full_rebuild")] = False,
) -> None:
    """Run the DAG chain for every snapshot from --start to --end, every
    snapshots.every_hours hours, oldest first (each snapshot's histories build on the one
    before). With a scheduler running, `airflow backfill create --dag-id vista_ingest`
    does the same through asset triggers."""
    from vista import pipeline

    cfg = _config(profile)
    first, last = _as_of(cfg, start), _as_of(cfg, end)
    if last < first:
        typer.echo(f"error: --end {last.iso} is before --start {first.iso}", err=True)
        raise typer.Exit(2)
    pipeline.check_snapshot(cfg, first, full=full_rebuild)
    pipeline.check_snapshot(cfg, last, full=full_rebuild)
    for moment in snapshots_between(first, last, cfg.snapshots.every_hours):
        _run_chain(cfg, moment, {"full_rebuild": True} if full_rebuild else {})
        typer.echo(f"{moment.iso}: done")


@app.command("airflow-ui")
def airflow_ui(
    profile: Profile = None,
    port: Annotated[int, typer.Option(help="port of the Airflow UI and API")] = 8080,
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default airflow.listen_host)")
    ] = None,
) -> None:
    """Start Airflow (scheduler, DAG processor, triggerer, API server and UI) for browsing
    and triggering the DAGs. The admin password is $VISTA_AIRFLOW_ADMIN_PASSWORD, else
    generated once per state folder and printed; paused DAGs of the chain are named."""
    from vista import airflow_runner

    raise typer.Exit(airflow_runner.standalone(_config(profile), port, host))


@app.command()
def unpause(
    dag_ids: Annotated[
        list[str] | None, typer.Argument(help="DAGs to unpause (default: the five of the chain)")
    ] = None,
    profile: Profile = None,
) -> None:
    """Unpause the chain's DAGs in this profile's Airflow (`airflow dags unpause`), so that
    a triggered vista_ingest run sets off the other four by asset."""
    from vista import airflow_runner

    cfg = _config(profile)
    unknown = sorted(set(dag_ids or []) - set(airflow_runner.CHAIN))
    if unknown:
        typer.echo(f"error: not a DAG of the chain: {', '.join(unknown)} "
                   f"(the chain: {', '.join(airflow_runner.CHAIN)})", err=True)  # fmt: skip
        raise typer.Exit(2)
    chosen = dag_ids or airflow_runner.CHAIN
    paused = [d for d in airflow_runner.paused_dags(cfg) if d in chosen]
    if not paused:
        typer.echo(f"none paused: {', '.join(chosen)}")
        return
    if airflow_runner.unpause(cfg, paused) != 0:
        typer.echo(f"error: airflow dags unpause failed; see {airflow_runner.unpause_log(cfg)}",
                   err=True)  # fmt: skip
        raise typer.Exit(1)
    still = airflow_runner.paused_dags(cfg)
    typer.echo(f"unpaused: {', '.join(d for d in paused if d not in still)}")
    _warn_paused(cfg)


@app.command("postgres")
def postgres(
    action: Annotated[str, typer.Argument(help="start, stop or status")],
    profile: Profile = "airflow-postgres",
) -> None:
    """A local PostgreSQL for Airflow's metadata (Debian's server binaries), at the
    profile's airflow.sql_alchemy_conn, kept in <state>/postgres; loopback only."""
    from devservers import postgres_local

    if action not in ("start", "stop", "status"):
        typer.echo(f"error: action must be start, stop or status, got {action!r}", err=True)
        raise typer.Exit(2)
    cfg = _config(profile)
    try:
        server = postgres_local.Server.for_url(cfg.airflow.sql_alchemy_conn or "",
                                               cfg.paths.state / "postgres")  # fmt: skip
    except ValueError as exc:
        typer.echo(f"error: profile {cfg.profile}: airflow.sql_alchemy_conn: {exc}", err=True)
        raise typer.Exit(2) from None
    if action == "start":
        postgres_local.start(server)
    elif action == "stop":
        postgres_local.stop(server)
    _print({"url": cfg.to_dict()["airflow"]["sql_alchemy_conn"], "folder": str(server.folder),
            "running": postgres_local.is_running(server)})  # fmt: skip


@app.command()
def serve(
    profile: Profile = None,
    port: Annotated[int, typer.Option(help="port of the scoring service")] = 8000,
    host: Host = "127.0.0.1",
) -> None:
    """Online scoring: POST /score {user_id, candidates: [{item_id}]} scores the candidates
    with the current ranker from the user's summary in the online store (categories looked
    up in the lake's items unless a candidate carries one);
    GET /health; API docs at /docs and /redoc (served offline). Listens on loopback
    unless --host says otherwise; bodies over serving.max_body_bytes get 413."""
    import uvicorn

    from vista.serving import create_app, freeze_startup_heap, load_service

    cfg = _config(profile)
    service = load_service(cfg)
    app = create_app(service, cfg.serving)
    freeze_startup_heap()
    uvicorn.run(app, host=host, port=port, log_level="info")


@app.command("spark-cluster")
def spark_cluster(
    action: Annotated[str, typer.Argument(help="start, stop or status")],
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="conf/<profile>.yaml: its spark.master")
    ] = "cluster",
    workers: Annotated[int, typer.Option(help="worker daemons")] = 2,
    cores: Annotated[int, typer.Option(help="cores per worker")] = 1,
    memory: Annotated[str, typer.Option(help="memory per worker")] = "2g",
    webui_port: Annotated[int, typer.Option(help="the master's web UI (state: /json/)")] = 8180,
) -> None:
    """A Spark standalone cluster on this machine (a master and workers on loopback) at
    the profile's spark.master; logs and executor output under <state>/spark-cluster."""
    from devservers import spark_standalone

    if action not in ("start", "stop", "status"):
        typer.echo(f"error: action must be start, stop or status, got {action!r}", err=True)
        raise typer.Exit(2)
    cfg = _config(profile)
    try:
        cluster = spark_standalone.Cluster.for_master(
            cfg.spark.master, cfg.paths.state / "spark-cluster", webui_port=webui_port,
            workers=workers, worker_cores=cores, worker_memory=memory,
        )  # fmt: skip
    except ValueError as exc:
        typer.echo(f"error: profile {cfg.profile}: {exc}", err=True)
        raise typer.Exit(2) from None
    if action == "start":
        try:
            spark_standalone.start(cluster)
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    elif action == "stop":
        spark_standalone.stop(cluster)
    state = spark_standalone.master_state(cluster)
    _print({"master": cluster.master_url, "web_ui": cluster.state_url.removesuffix("json/"),
            "running": state is not None,
            "alive_workers": None if state is None else state["aliveworkers"]})  # fmt: skip


@app.command("cutoff-date")
def cutoff_date(profile: Profile = None) -> None:
    """Print the synthetic data's history cutoff (the default as_of)."""
    from vista import pipeline

    typer.echo(pipeline.default_as_of(_config(profile)))


@app.command("feast-repo")
def feast_repo(profile: Profile = None) -> None:
    """Write this profile's Feast repo for the plain feast CLI (<state>/feast: its
    feature_store.yaml and definitions) and print the folder:
    `feast -c "$(vista feast-repo)" feature-views list`."""
    from vista.features import write_feast_repo

    typer.echo(write_feast_repo(_config(profile)))


@app.command(hidden=True)
def env(profile: Profile = None) -> None:
    """Gone: Feast no longer reads the configuration from environment variables."""
    typer.echo('error: `vista env` is gone: Feast reads this profile\'s configuration from the '
               'repo `vista feast-repo` writes; use `feast -c "$(vista feast-repo)" ...`', err=True)  # fmt: skip
    raise typer.Exit(2)


@app.command("init-profile")
def init_profile(
    events_file: Annotated[Path, typer.Argument(help="one events file (CSV, JSON lines, Parquet)")],
    out: Annotated[
        Path | None, typer.Option(help="the profile to write (default ./<file name>.yaml)")
    ] = None,
    file_format: Annotated[
        str | None,
        typer.Option("--format", help="csv, jsonl or parquet (default: from the file's name)"),
    ] = None,
    separator: Annotated[
        str | None, typer.Option(help="CSV separator (default: the one the first lines share)")
    ] = None,
    sample_rows: Annotated[int, typer.Option(help="rows profiled (a uniform sample)")] = 200_000,
    force: Annotated[bool, typer.Option(help="replace --out if it exists")] = False,
) -> None:
    """Propose a profile for your own events from a sample of the file: the column
    mapping, timestamp unit, label rule and a cutoff date (or a per-user split); check it
    through the loader and write it, commented, for review. Use it with --profile PATH."""
    from vista.init_profile import InitProfileError, init_profile

    if file_format not in (None, "csv", "jsonl", "parquet"):
        raise InitProfileError(f"--format {file_format!r}: use csv, jsonl or parquet")
    if sample_rows < 100:
        raise InitProfileError(f"--sample-rows {sample_rows}: profile at least 100 rows")
    result = init_profile(events_file, out, file_format, separator, sample_rows, force)
    typer.echo("\n".join(result.lines()))


@app.command("config")
def show_config(profile: Profile = None) -> None:
    """Print the validated configuration."""
    _print(_config(profile).to_dict())


@app.command()
def quarantine(
    action: Annotated[str, typer.Argument(help="list | counts | export | replay | evict")],
    target: Annotated[
        Path | None, typer.Argument(help="export: the CSV to write; replay: the corrected file")
    ] = None,
    profile: Profile = None,
    as_of: AsOf = None,
    reason: Annotated[str | None, typer.Option(help="only rows with this reason")] = None,
    source_file: Annotated[str | None, typer.Option(help="only rows of this file")] = None,
    ingest_run: Annotated[str | None, typer.Option(help="only rows of this run")] = None,
    limit: Annotated[int, typer.Option(help="list: rows shown")] = 50,
) -> None:
    """Rows the ingest set aside: list, counts by reason, export (CSV), replay a corrected
    file through the same validation (exactly once), evict rows the events suite rejects
    from `events` into quarantine."""
    from vista import quarantine as q

    cfg = _config(profile)
    filters = {"reason": reason, "source_file": source_file, "ingest_run": ingest_run}
    try:
        if action in ("list", "counts", "export"):
            frame = q.rows(cfg, **filters)
            if action == "list":
                _print(frame.head(limit).to_dict("records") + ([f"... {len(frame) - limit} more"]
                       if len(frame) > limit else []))  # fmt: skip
            elif action == "counts":
                _print({"rows": len(frame), "by_reason": q.counts(frame).to_dict("records")})
            else:
                out = target or Path("quarantine.csv")
                _print({"rows": len(frame), "written": str(q.export_csv(frame, out))})
        elif action == "replay" and target is not None:
            _print(q.replay(cfg, target, _as_of(cfg, as_of)))
        elif action == "evict":
            _print(q.evict(cfg, _as_of(cfg, as_of)))
        else:
            raise q.QuarantineError(f"unknown action {action!r} (or replay without a file): "
                                    "use list, counts, export [FILE], replay FILE or evict")  # fmt: skip
    except q.QuarantineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


if __name__ == "__main__":
    app()
