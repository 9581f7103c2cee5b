from tests.support.chain import ganache_process  # noqa: F401 (a real Ganache for the demo runs)
