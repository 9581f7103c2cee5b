from tests.support.chain import embedded, embedded_env, env, ganache_env, ganache_process  # noqa: F401
