"""The dashboard: a local, read-only web page of the round history, live while a run goes on.

:mod:`dashboard.server` serves ``index.html`` (its own JS draws the tables and SVG
charts: no CDN, works offline), the JSON feed the page polls, built from
:mod:`aggregator.audit`'s read functions, and read-only views of the transactions and blocks the
page links to (:mod:`dashboard.transactions`).
"""

__all__ = ["server", "transactions"]  # the public modules
