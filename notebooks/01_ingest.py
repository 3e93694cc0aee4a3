# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Ingest
# MAGIC Landing zone -> bronze -> silver (+ quarantine). Idempotent per source file: running it
# MAGIC twice adds nothing. Widgets: `env`, `set` (`key=value;key=value` overrides).

# COMMAND ----------

from medallion.notebook import NotebookContext

ctx = NotebookContext.create(globals(), widgets={"env": "local", "set": ""})

# COMMAND ----------

from medallion.ingest import Ingestor

report = Ingestor(ctx.settings, ctx.spark).run_batch()
for feed, files, bronze, silver, quarantined, duplicates in report.rows():
    print(
        f"{feed}: {files} files, bronze {bronze}, silver {silver}, quarantined {quarantined}, duplicates {duplicates}"
    )

# COMMAND ----------

from medallion.tables import Lakehouse

quarantine = Lakehouse(ctx.settings, ctx.spark).table("silver", "quarantine").read()
ctx.display(
    quarantine.selectExpr("feed", "explode(reasons) AS reason").groupBy("feed", "reason").count(), globals()
)
