"""The ground floor: what every other room of the project stands on, importing nothing of
the project above it (``tests/test_layout.py`` checks).

- ``config``: the one typed configuration (profiles, ``VISTA__`` variables, validation);
- ``names``: the lake's table names and partition columns, one constant each;
- ``snapshot``: the run date as one value (date, ISO string, midnight UTC, microseconds);
- ``summary_codec``: how summary tokens are stored (int8, bf16 or float32);
- ``lake``: the Delta storage layer (delta-rs, and Spark through staged parquet);
- ``errors``: the failures a user fixes with a setting or a command.
"""
