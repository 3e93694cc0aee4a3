# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Stream
# MAGIC The speed layer: the trigger, source and sink come from conf (`stream.*`). Widget
# MAGIC `seconds` stops it after that long (0 = run until cancelled).

# COMMAND ----------

from medallion.notebook import NotebookContext

ctx = NotebookContext.create(globals(), widgets={"env": "local", "set": "", "seconds": "30"})

# COMMAND ----------

from medallion.streaming.speed import SpeedLayer

seconds = float(ctx.widget("seconds"))
# Blocks until availableNow drains, `seconds` pass, or the cell is cancelled; stops between batches.
SpeedLayer(ctx.settings, ctx.spark).run(timeout=seconds or None)
