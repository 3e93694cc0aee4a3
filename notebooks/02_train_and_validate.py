# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Train and validate
# MAGIC Builds gold features for every day silver holds, trains a challenger from
# MAGIC gold.training_set, runs the validation gate and promotes it to champion if it passes.

# COMMAND ----------

from medallion.notebook import NotebookContext

ctx = NotebookContext.create(globals(), widgets={"env": "local", "set": ""})

# COMMAND ----------

from medallion.features import FeatureStore

store = FeatureStore(ctx.settings, ctx.spark)
days = store.event_dates()
build = store.build(days[0], days[-1])  # every day in one pass
print(f"{build.days}: {build.features} feature rows")
rows, version = store.refresh_training_set()
print(f"training set: {rows} rows (v{version})")

# COMMAND ----------

from medallion.model.lifecycle import retrain_and_promote

print(retrain_and_promote(ctx.spark, ctx.settings, store.table("training_set")))
