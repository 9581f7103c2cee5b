"""Compiled contract artifacts (ABI, bytecode), reproducible with `loraledger contracts build`."""
