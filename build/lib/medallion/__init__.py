"""medallion: Lambda-architecture ML scoring on Spark Structured Streaming, Delta and MLflow.

Importing the package has no side effects: no SparkSession, no MLflow client, no I/O.
"""

__version__ = "0.1.0"
