"""Genome encoding: JSON round trip, rejection of malformed files, active nodes."""
import json

import numpy as np
import pytest

from cgphw.cgp.genome import Genome, grid_for, load_genome, random_genome
from cgphw.errors import UserError


def sample():
    grid = grid_for(3, 4, 3, 4, 2)
    return random_genome(grid, np.random.default_rng(7))


def test_json_round_trip(tmp_path):
    g = sample()
    path = g.save(tmp_path / "g.json")
    back = load_genome(path)
    assert back == g and back.digest() == g.digest()
    assert np.array_equal(back.evaluate(np.array([[1, 2, 3]], np.int8)), g.evaluate(np.array([[1, 2, 3]], np.int8)))
    # a run's best.json (genome wrapped) loads too
    (tmp_path / "best.json").write_text(json.dumps({"format": "cgphw-run/1", "genome": g.to_json()}))
    assert load_genome(tmp_path / "best.json") == g


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.update(format="cgphw-genome/0"), "format"),
    (lambda d: d.pop("rows"), "missing field"),
    (lambda d: d.update(nodes=d["nodes"][:-1]), "nodes must be"),
    (lambda d: d.update(outputs=d["outputs"] + [0]), "outputs must list"),
    (lambda d: d["nodes"][0].__setitem__(2, 999), "gate 999"),
    (lambda d: d["nodes"][0].__setitem__(2, 4) or d.update(function_set=[1, 2]), "not in the function set"),
    (lambda d: d["nodes"][5].__setitem__(0, 40), "may not reach"),
    (lambda d: d["outputs"].__setitem__(0, -1), "may not reach"),
    (lambda d: d.update(rows=0), "rows must be"),
])
def test_malformed_genomes_are_rejected(tmp_path, mutate, message):
    doc = sample().to_json()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=message):
        load_genome(path)


def test_not_json_and_missing_file(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(UserError, match="not readable JSON"):
        load_genome(tmp_path / "x.json")
    with pytest.raises(UserError, match="does not exist"):
        load_genome(tmp_path / "none.json")


def test_constants_only_column_zero_must_hold_constants():
    grid = grid_for(0, 1, 2, 2, 2)
    g = random_genome(grid, np.random.default_rng(1))
    assert all(g.nodes[k, 2] in grid.constant_ids and g.nodes[k, 0] == g.nodes[k, 1] == 0 for k in range(2))
    genes = g.genes.copy()
    genes[2] = 1  # an add in column 0 has nothing to read
    with pytest.raises(UserError, match="nothing to read"):
        Genome(grid, genes)


def test_active_nodes_hand_built():
    grid = grid_for(2, 1, 1, 4, 4)
    # n0 = add(in0, in1); n1 = neg(n0) (in1 gene unused); n2 = mul(in0, in0) unused; n3 = sub(n1, n0)
    genes = np.array([0, 1, 1, 2, 0, 4, 0, 0, 3, 3, 2, 2, 5], np.int32)
    g = Genome(grid, genes)
    assert g.active_nodes().tolist() == [0, 1, 3]
    assert g.expressions() == ["n0 = add(in0, in1)", "n1 = neg(n0)", "n3 = sub(n1, n0)", "out0 = n3"]
    assert g.evaluate(np.array([[5, 6]], np.int8)).tolist() == [[-22]]
