"""The one place a SparkSession is built."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from vista.core.config import SparkConfig


@contextlib.contextmanager
def _stderr_to(path: Path | None):
    """File descriptor 2 goes to ``path`` while the JVM is launched: the JVM inherits it
    and keeps writing its start-up notices and log4j lines there, so that a command's
    own one-line error is the only thing on the terminal. None: left as it is."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def spark_session(cfg: SparkConfig, app_name: str = "vista", jvm_log: Path | None = None):
    """Get or create the SparkSession that ``cfg`` describes. A JVM launched here writes
    its own output to ``jvm_log`` (when given, and unless $VISTA_DEBUG is set).

    Local mode is the embedded default; a cluster is only a different ``master``. On a
    cluster the executors' Python must import this project (here: the same venv, where
    it is installed; elsewhere: an image or a wheel, see infra/spark/README.md), and
    the lake and the models folder must be paths that every executor can read.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # executors must run the same interpreter (and so the same torch) as the driver
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.appName(app_name)
        .master(cfg.master)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.executor.memory", cfg.executor_memory)
        .config("spark.executor.cores", str(cfg.executor_cores))
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.arrow_batch_rows))
        .config("spark.sql.execution.arrow.maxBytesPerBatch", str(cfg.arrow_batch_bytes))
        # partition values are strings in Delta; keep them strings when Spark reads them
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.hadoop.parquet.enable.summary-metadata", "false")
    )
    for key, value in cfg.conf.items():
        builder = builder.config(key, value)
    # py4j logs every connection at INFO, late in interpreter shutdown too
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from pyspark import SparkContext

    debug = os.environ.get("VISTA_DEBUG", "").lower() in ("1", "true", "yes")
    launching = SparkContext._active_spark_context is None and not debug
    with _stderr_to(jvm_log if launching else None):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
