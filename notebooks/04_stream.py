# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Stream
# MAGIC The speed layer: the trigger, source and sink come from conf (`stream.*`). Widget
# MAGIC `seconds` stops it after that long (0 = run until cancelled).

# COMMAND ----------

from medallion.notebook import NotebookContext

ctx = NotebookContext.create(globals(), widgets={"env": "local", "set": "", "seconds": "30"})

# COMMAND ----------

from medallion.streaming.run import run_until_stopped
from medallion.streaming.speed import SpeedLayer

query = SpeedLayer(ctx.settings, ctx.spark).start()
seconds = float(ctx.widget("seconds"))
run_until_stopped(query, timeout=seconds or None)
