# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Nightly batch
# MAGIC Scores one day (widget `date`, default yesterday; widget `today` pins the clock) with the champion through
# MAGIC `mlflow.pyfunc.spark_udf` and replaces that day's partition of gold.predictions_batch.

# COMMAND ----------

from medallion.notebook import NotebookContext

ctx = NotebookContext.create(globals(), widgets={"env": "local", "set": "", "date": "", "today": ""})

# COMMAND ----------

from medallion.batch import NightlyBatch

day = ctx.day()
report = NightlyBatch(ctx.settings, ctx.spark, on_step=print).run(day)
print(f"{report.day}: scored {report.scored} events with model v{report.model_version}")
