import jax
import jax.random as jr
import pytest


jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


class _GetKey:
    def __init__(self, seed: int):
        self.key = jr.key(seed)

    def __call__(self):
        self.key, subkey = jr.split(self.key)
        return subkey


@pytest.fixture
def getkey():
    return _GetKey(0)
