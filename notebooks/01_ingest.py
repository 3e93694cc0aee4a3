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
for c in report.feeds.values():
    print(
        f"{c.feed}: {c.files} files, bronze {c.bronze}, silver {c.silver}, quarantined {c.quarantined}, "
        f"duplicates {c.duplicates}, dropped {c.dropped}, expectations broken {c.expectations}"
    )

# COMMAND ----------

from medallion.tables import Lakehouse

quarantine = Lakehouse(ctx.settings, ctx.spark).table("silver", "quarantine").read()
ctx.display(
    quarantine.selectExpr("feed", "explode(reasons) AS reason").groupBy("feed", "reason").count(), globals()
)
