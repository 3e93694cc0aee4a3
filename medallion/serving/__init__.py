"""The serving side: the serving table's lookup, and the online scoring service with its store.

Usage::

    from medallion.serving import get_score

    get_score("evt-000123", settings=settings)      # the serving row, read with Spark

    # the online side (see medallion.serving.api, .materialize, .store):
    #   medallion serve materialize     card profiles and precomputed scores into the store
    #   medallion serve api             POST /score, GET /predictions/{event_id}, /model, /health, /ready
"""

from medallion.serving.lookup import get_score

__all__ = ["get_score"]
