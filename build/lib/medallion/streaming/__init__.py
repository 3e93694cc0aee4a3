"""The speed layer: Structured Streaming queries whose trigger, source and sink are configuration."""

from medallion.streaming.plan import StreamPlan, plan_stream

__all__ = ["StreamPlan", "plan_stream"]
