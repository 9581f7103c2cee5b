"""The whole story in one process (``loraledger demo``): deploy, publish a funded task, train N
nodes for R rounds, aggregate, claim every reward, audit. :mod:`demo.run` holds it."""

__all__ = ["run"]  # the public modules
