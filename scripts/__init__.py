"""Command line and operator scripts: the top layer (imports fl_node, aggregator, ipfs, chain)."""
