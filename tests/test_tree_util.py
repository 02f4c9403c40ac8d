"""minijax.tree_util against jax.tree_util."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import parity
Point = namedtuple("Point", ["x", "y"])
V = np.array([0.3, -1.2, 2.5], np.float32)

TREES = {
    "leaf": 3,
    "none": None,
    "tuple": (1, 2.0, "three"),
    "nested": {"b": (1, [2, 3]), "a": None, "c": {"z": 4, "y": 5}},
    "namedtuple": [Point(1, (2, 3)), (4,), [], (), {}],
    "nones": (None, 1, [None, {"k": None}]),
    "empty_containers": ([], (), {}, [[]]),
    "int_keys": {2: "x", 1: "y", 3: ("z",)},
    "arrays": {"w": V, "b": [np.float32(1.0), 2.0]},
    "singletons": ((1,), [2], {"only": 3}),
}

# Trees whose structure prints the same in both libraries.
PRINTABLE = [name for name in TREES if name != "namedtuple"]


@pytest.mark.parametrize("name", TREES)
def test_flatten_and_unflatten_round_trip(name):
    def run(jax, jnp):
        tree = TREES[name]
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
        relabeled = jax.tree_util.tree_unflatten(treedef, [f"leaf{i}" for i in range(len(leaves))])
        return leaves, rebuilt, relabeled, treedef.num_leaves, rebuilt == tree
    parity.assert_same(run)


@pytest.mark.parametrize("name", PRINTABLE)
def test_structure_prints_as_in_jax(name):
    parity.assert_same(lambda jax, jnp: str(jax.tree_util.tree_structure(TREES[name])))
    parity.assert_same(lambda jax, jnp: repr(jax.tree_util.tree_structure(TREES[name])))


def test_namedtuple_structure_prints_as_in_jax():
    parity.assert_same(lambda jax, jnp: str(jax.tree_util.tree_structure(Point(1, 2))))


def test_leaves_and_structure():
    parity.assert_same(lambda jax, jnp: [jax.tree_util.tree_leaves(t) for t in TREES.values()])
    parity.assert_same(lambda jax, jnp: [jax.tree_util.tree_structure(t).num_leaves
                                         for t in TREES.values()])


def test_structure_equality():
    def run(jax, jnp):
        s = jax.tree_util.tree_structure
        pairs = [((1, 2), (3, 4)), ((1, 2), [3, 4]), ({"a": 1}, {"b": 1}), ({"a": 1}, {"a": (1,)}),
                 (Point(1, 2), (1, 2)), (Point(1, 2), Point("a", V)), (None, None), (None, ()),
                 ((1, None), (1, 2)), ({"a": 1, "b": 2}, {"b": 3, "a": 4}), (1, V)]
        same = [s(a) == s(b) for a, b in pairs]
        hashes = [hash(s(a)) == hash(s(b)) for a, b in pairs if s(a) == s(b)]
        return same, hashes
    parity.assert_same(run)


def test_tree_map():
    def run(jax, jnp):
        tm = jax.tree_util.tree_map
        return [
            tm(lambda x: x * 2, TREES["nested"]),
            tm(lambda a, b, c: a + b * c, {"x": (1, 2), "y": 3}, {"x": (10, 20), "y": 30},
               {"x": (1, 1), "y": 2}),
            tm(lambda x: x * 2, {"x": None, "y": (1, None)}),  # None is an empty subtree
            tm(lambda x: x + 1, Point(1, [2, Point(3, 4)])),
            tm(lambda x: -x, 5),
            tm(lambda x, y: (x, y), [1, 2], ["a", "b"]),  # leaves may become tuples
            tm(lambda x: jnp.sin(x), {"w": V, "s": 1.0}),
        ]
    parity.assert_same(run)


def test_tree_map_with_mismatched_trees():
    parity.assert_same(lambda jax, jnp: jax.tree_util.tree_map(lambda a, b: a, (1, 2), (1, 2, 3)))
    parity.assert_same(lambda jax, jnp: jax.tree_util.tree_map(lambda a, b: a, {"a": 1}, {"b": 1}))


def test_unflatten_with_the_wrong_number_of_leaves():
    def unflatten(n):
        return lambda jax, jnp: jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure((1, 2)), list(range(n)))
    parity.assert_same(unflatten(3))
    parity.assert_same(unflatten(1))


def test_flatten_with_is_leaf():
    parity.assert_same(lambda jax, jnp: jax.tree_util.tree_flatten(
        {"x": (1, 2), "y": [3, (4,)]}, is_leaf=lambda t: isinstance(t, tuple))[0])
    parity.assert_same(lambda jax, jnp: jax.tree_util.tree_flatten(
        [None, 1], is_leaf=lambda t: t is None)[0])


def test_tree_map_with_is_leaf():
    parity.assert_same(lambda jax, jnp: jax.tree_util.tree_map(
        len, {"x": (1, 2), "y": [(3,)]}, is_leaf=lambda t: isinstance(t, tuple)))


def make_box_class(jax):
    """A fresh class per library: JAX refuses to register one type twice."""

    class Box:
        def __init__(self, a, b, label):
            self.a, self.b, self.label = a, b, label

        def parts(self):
            return self.a, self.b, self.label

        def __repr__(self):
            return f"Box{self.parts()}"

    jax.tree_util.register_pytree_node(
        Box, lambda box: ((box.a, box.b), box.label), lambda label, kids: Box(*kids, label))
    return Box


def test_register_pytree_node():
    def run(jax, jnp):
        Box = make_box_class(jax)
        leaves, treedef = jax.tree_util.tree_flatten([Box(1, (2, 3), "hi"), 4])
        rebuilt = jax.tree_util.tree_unflatten(treedef, [10, 20, 30, 40])
        doubled = jax.tree_util.tree_map(lambda x: x * 2, Box(1, Box(2, 3, "in"), "out"))
        same = treedef == jax.tree_util.tree_structure([Box(0, (0, 0), "hi"), 0])
        other_label = treedef == jax.tree_util.tree_structure([Box(0, (0, 0), "ho"), 0])
        return (leaves, rebuilt[0].parts(), rebuilt[1], doubled.a, doubled.b.parts(),
                doubled.label, same, other_label)
    parity.assert_same(run)


def test_transformations_see_through_registered_nodes():
    def run(jax, jnp):
        Box = make_box_class(jax)
        g = jax.grad(lambda box: box.a * jnp.sin(box.b))(Box(1.0, 2.0, "g"))
        v = jax.vmap(lambda box: box.a + box.b)(Box(jnp.ones(3), jnp.arange(3.0), "v"))
        j = jax.jit(lambda box: Box(box.a * 2, box.b, box.label))(Box(1.0, V, "j"))
        _, t = jax.jvp(lambda box: box.a * box.b, (Box(2.0, V, "p"),), (Box(1.0, V, "p"),))
        return g.parts(), v, j.parts(), t
    parity.assert_same(run)


@pytest.mark.parametrize("name", TREES)
def test_leaf_paths_are_written_as_jax_writes_key_paths(name):
    import jax.tree_util

    from minijax.tree_util import leaf_paths

    expected = [jax.tree_util.keystr(path)
                for path, _ in jax.tree_util.tree_flatten_with_path(TREES[name])[0]]
    assert leaf_paths(TREES[name]) == expected


Other = namedtuple("Other", ["x", "y"])
PREFIX_MISMATCHES = {  # name: (a tree with the prefix's structure, a tree that lacks it)
    "leaf for a tuple": ((0, 0), 5.0),
    "list for a tuple": ((0, 0), [[1, 2], [3, 4]]),
    "tuple for a list": ([0, 0], (1, 2)),
    "tuple arity": ((0, 0, 0), ((1, 2), (3, 4))),
    "list arity": ([0], [1, 2]),
    "dict keys": ({"a": 0, "b": 0}, {"a": (1, 2), "c": (3, 4)}),
    "list for a dict": ({"a": 0}, [1]),
    "value for None": ((None, 0), (4, 5)),
    "tuple for a namedtuple": (Point(0, 0), (1, 2)),
    "another namedtuple": (Point(0, 0), Other(1, 2)),
    "namedtuple for a tuple": ((0, 0), Point(1, 2)),
    "tuple for a custom node": ("box", (1, 2)),
    "custom node data": ("box", "other label"),
}


@pytest.mark.parametrize("name", PREFIX_MISMATCHES)
def test_flatten_up_to_a_tree_without_the_prefix(name):
    def run(jax, jnp):
        prefix, tree = PREFIX_MISMATCHES[name]
        if prefix == "box":
            Box = make_box_class(jax)
            prefix = Box(0, 0, "label")
            tree = Box(1, 2, tree) if isinstance(tree, str) else tree
        try:
            jax.tree_util.tree_structure(prefix).flatten_up_to(tree)
        except ValueError as e:
            return str(e)
    assert parity.assert_same(run) is not None


def test_tree_transpose_of_a_tree_without_the_outer_structure():
    def run(jax, jnp):
        outer = jax.tree_util.tree_structure((0, 0))
        try:
            jax.tree_util.tree_transpose(outer, None, 5.0)
        except ValueError as e:
            return str(e)
    assert parity.assert_same(run) == "Expected tuple, got 5.0."
