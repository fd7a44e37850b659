"""Local development servers, out of the product: PostgreSQL (Airflow's metadata in
conf/airflow-postgres.yaml), Redis (the online store of conf/redis.yaml), an
S3-compatible server (conf/s3.yaml) and a Spark standalone cluster, each started on a
free loopback port for the tests, the benches and `vista postgres` / `vista
spark-cluster`. No product package imports this one; only the CLI, tests and benches do.
"""
