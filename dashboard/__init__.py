"""The dashboard: a local, read-only web page of the round history, live while a run goes on.

:mod:`dashboard.server` serves ``index.html`` (its own JS draws the tables and SVG
plots: no CDN, works offline) and one JSON endpoint the page polls, built from
:mod:`aggregator.audit`'s read functions.
"""

__all__ = ["server"]  # the public modules
