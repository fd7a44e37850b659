"""The Spark driver's entry point on Kubernetes: the `vista` CLI, unchanged.

spark-submit (or the spark-operator) runs a Python file, not a console script; this
file is that file. Its folder holds no modules, so it shadows nothing on sys.path.
"""

from vista.cli import app

if __name__ == "__main__":
    app()
