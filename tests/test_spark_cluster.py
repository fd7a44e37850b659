"""The same jobs on a Spark standalone cluster, selected by configuration alone.

A master and 2 workers run on loopback. History assembly and summarization run once in
local mode (this process) and once in a subprocess whose configuration differs only in
VISTA__SPARK__MASTER (and its lake folder); the two runs' tables must be equal, and the
workers' executor logs must show that they, not the driver, ran the tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from devservers.ports import free_port
from vista.core import names
from vista.core.snapshot import Snapshot

from .conftest import tiny_config

pytestmark = pytest.mark.slow

# float32 tokens: compared with a tight tolerance, not through int8 rounding
CODEC = {"features": {"summary_codec": "float32"}}

CLUSTER_RUN = """
import json
from vista import pipeline
from vista.pipeline.partitions import spark_of
from vista.core.config import load_config
from vista.core.snapshot import Snapshot

cfg = load_config()
as_of = Snapshot.of(pipeline.default_as_of(cfg))
pipeline.ingest_events(cfg)
steps = {"histories": pipeline.build_histories(cfg, as_of),
         "summarizer": pipeline.train_summarizer(cfg, as_of, progress=False),
         "summaries": pipeline.summarize(cfg, as_of)}
sc = spark_of(cfg).sparkContext
print(json.dumps({"master": sc.master, "app_id": sc.applicationId, **steps}, default=str))
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from devservers import spark_standalone

    spec = spark_standalone.Cluster(
        home=tmp_path_factory.mktemp("spark-cluster"), port=free_port(), webui_port=free_port(),
        workers=2, worker_cores=1, worker_memory="1g", ident=f"vista-test-{os.getpid()}",
    )  # fmt: skip
    try:
        state = spark_standalone.start(spec)
        yield spec, state
    finally:
        spark_standalone.stop(spec)


def test_cluster_runs_the_jobs_like_local_mode(cluster, tmp_path):
    from devservers import spark_standalone
    from vista import pipeline
    from vista.core import lake

    spec, state = cluster
    assert state["aliveworkers"] == 2
    assert sorted(w["cores"] for w in state["workers"]) == [1, 1]

    # local mode, in this process: it also trains the summarizer both runs use
    local = tiny_config(tmp_path / "local", **CODEC)
    as_of = Snapshot.of(pipeline.default_as_of(local))
    pipeline.ingest_events(local)
    pipeline.build_histories(local, as_of)
    pipeline.train_summarizer(local, as_of, progress=False)
    pipeline.summarize(local, as_of)

    # the cluster: the same profile and models folder, only the master (and lake) differ
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISTA")}
    env |= {"VISTA_PROFILE": "tiny", "VISTA__SPARK__MASTER": spec.master_url,
            "VISTA__PATHS__STATE": str(local.paths.state),
            "VISTA__PATHS__LAKE": str(tmp_path / "cluster" / "lake"),
            "VISTA__PATHS__REPORTS": str(tmp_path / "cluster" / "reports"),
            "VISTA__FEATURES__SUMMARY_CODEC": "float32"}  # fmt: skip
    run = subprocess.run([sys.executable, "-c", CLUSTER_RUN], env=env, capture_output=True,
                         text=True, timeout=300, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    steps = json.loads(run.stdout.strip().splitlines()[-1])
    assert steps["master"] == spec.master_url
    assert steps["summarizer"]["reused"] is True  # the weights local mode trained
    remote = local.model_copy(
        update={"paths": local.paths.model_copy(update={"lake": tmp_path / "cluster" / "lake"})}
    )

    # both workers ran executors of the app, and those executors ran tasks
    finished = {app["id"]: app for app in spark_standalone.master_state(spec)["completedapps"]}
    assert finished[steps["app_id"]]["state"] == "FINISHED"
    for worker in (1, 2):
        logs = list((spec.work_dir(worker) / steps["app_id"]).glob("*/stderr"))
        assert logs, f"worker {worker} ran no executor"
        assert any("Finished task" in p.read_text(errors="replace") for p in logs), worker

    # histories: identical, row for row
    day = [("as_of_date", "=", as_of.date().isoformat())]
    histories = [lake.read_arrow(c.paths.table(names.HISTORIES), filters=day).sort_by("user_id")
                 for c in (local, remote)]  # fmt: skip
    assert histories[0].num_rows == local.generator.n_users
    assert histories[0].equals(histories[1])

    # summaries: the same users and versions; tokens equal up to float reduction order
    summaries = [pipeline.read_summaries(c, as_of).sort_values("user_id", ignore_index=True)
                 for c in (local, remote)]  # fmt: skip
    keys = ["user_id", "summarizer_version", "history_length", "is_empty_history"]
    assert summaries[0][keys].equals(summaries[1][keys])
    tokens = [np.stack(s["summary"].to_numpy()).reshape(len(s), -1) for s in summaries]
    k, d = local.summarizer.n_seeds, local.summarizer.dim
    assert tokens[0].shape == (local.generator.n_users, k * d)
    assert np.abs(tokens[0]).mean() > 1e-3  # real tokens, not zeros on both sides
    np.testing.assert_allclose(tokens[1], tokens[0], rtol=1e-5, atol=1e-6)


def test_the_cluster_listens_on_loopback_only(cluster):
    """Every socket of the master's and the workers' JVMs (RPC, web UIs, block managers)
    listens on 127.0.0.1; cluster.host (spark.master's host) is what opens them wider."""
    from devservers import spark_standalone
    from tests.sockets import LOOPBACK, listening

    spec, _ = cluster
    pids = [int(spark_standalone._pid_file(spec, cls, i).read_text())
            for cls, i, _ in spark_standalone.daemons(spec)]  # fmt: skip
    sockets = set().union(*map(listening, pids))
    assert {spec.port, spec.webui_port} <= {port for _, _, port in sockets}, sockets
    assert {ip for _, ip, _ in sockets} <= LOOPBACK, sockets
