# Databricks notebook source
# MAGIC %md
# MAGIC # 05 · Reconcile and report
# MAGIC Folds the speed layer into gold.predictions for `date` (default yesterday; widget `today` pins the clock), then
# MAGIC writes the HTML run report.

# COMMAND ----------

from medallion.notebook import NotebookContext

ctx = NotebookContext.create(globals(), widgets={"env": "local", "set": "", "date": "", "today": ""})

# COMMAND ----------

from medallion.reconcile import Reconciler

day = ctx.day()
audit = Reconciler(ctx.settings, ctx.spark).run(day)
print(audit.as_dict())

# COMMAND ----------

from medallion.report import RunReport

print("report:", RunReport(ctx.settings, ctx.spark).build().write())
