"""Every name the book gives as JAX's exists in the pinned JAX (book/jax_names.txt)."""
import importlib
from pathlib import Path

import pytest

NAMES = [line.strip() for line in
         (Path(__file__).resolve().parent.parent / "book" / "jax_names.txt").read_text().splitlines()
         if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("name", NAMES)
def test_the_name_exists_in_jax(name):
    module_name, _, attributes = name.partition(":")
    obj = importlib.import_module(module_name)
    for attribute in filter(None, attributes.split(".")):
        assert hasattr(obj, attribute), f"{name}: JAX has no {attribute} there"
        obj = getattr(obj, attribute)
