"""Emission: every gate, both forms, value-bank wiring, zero inputs and pass-through outputs,
checked bit-exactly in Amaranth's simulator against Genome.evaluate; Verilog read by Yosys."""
from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from cgphw import gates as G
from cgphw.cgp.genome import Genome, grid_for, random_genome
from cgphw.errors import UserError
from cgphw.hw.emit import build_component, describe_ports, plan, to_rtlil, to_verilog
from cgphw.hw.rom import build_rom

CORNERS = (-128, -1, 0, 1, 127)
SEED27 = G.function_set("seed27")


# --- genome and stimulus builders (also used by test_export) ------------------------------
def chain_genome(n_in: int, nodes: list, outputs: list, function_set="seed27") -> Genome:
    """One row, one node per column; every column and the outputs may read everything
    before them (levels-back = cols + 1). Pins: 0..n_in-1 the inputs, n_in + k node k."""
    grid = grid_for(n_in, len(outputs), 1, len(nodes), len(nodes) + 1, function_set)
    return Genome(grid, np.array([g for node in nodes for g in node] + list(outputs), np.int32))


def stimulus(n_in: int, n_random: int, seed: int) -> np.ndarray:
    """Corner vectors (every input -128, -1, 0, 1, 127 in turn; all pairs for two inputs)
    followed by seeded random ones."""
    if n_in == 0:
        return np.zeros((1, 0), np.int8)
    rows = []
    if n_in <= 2:
        grids = np.meshgrid(*[CORNERS] * n_in, indexing="ij")
        rows += np.stack([g.ravel() for g in grids], axis=1).tolist()
    else:
        rows += [[c] * n_in for c in CORNERS]
        rows += [[CORNERS[(i + s) % 5] for i in range(n_in)] for s in range(5)]
    rng = np.random.default_rng(seed)
    rows += rng.integers(-128, 128, (n_random, n_in)).tolist()
    return np.array(rows, np.int8)


def simulate_comb(component, vectors: np.ndarray) -> np.ndarray:
    out = []

    async def bench(ctx):
        for x in vectors:
            if vectors.shape[1]:
                ctx.set(component.stored, [int(v) for v in x])
            out.append([int(v) for v in ctx.get(component.weights)])

    sim = Simulator(component)
    sim.add_testbench(bench)
    sim.run()
    return np.array(out, np.int8).reshape(len(vectors), -1)


def simulate_pipelined(component, vectors: np.ndarray, valid: list, reset: set = frozenset()):
    """Drive one cycle per entry of ``valid`` (True: the next vector enters); returns per
    cycle (valid_out, weights) sampled after the clock edge, and the cycle each vector entered."""
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = component
    samples, entered = [], []
    rng = np.random.default_rng(7)

    async def bench(ctx):
        k = 0
        for cycle, v in enumerate(valid):
            ctx.set(domain.rst, int(cycle in reset))
            if v and k < len(vectors):
                x, k = vectors[k], k + 1
                entered.append(cycle)
            else:
                x = rng.integers(-128, 128, vectors.shape[1])  # garbage while not valid
            if vectors.shape[1]:
                ctx.set(component.stored, [int(i) for i in x])
            ctx.set(component.valid_in, int(v))
            await ctx.tick()
            samples.append((ctx.get(component.valid_out), [int(w) for w in ctx.get(component.weights)]))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return samples, entered


def check_pipelined(genome: Genome, k: int, vectors: np.ndarray, valid=None, reset=frozenset()):
    component = build_component(genome, pipeline=k)
    lat = component.latency
    valid = [True] * len(vectors) + [False] * (lat + 1) if valid is None else valid
    samples, entered = simulate_pipelined(component, vectors, valid, reset)
    expected = genome.evaluate(vectors[: len(entered)])
    due = {cycle + lat - 1: i for i, cycle in enumerate(entered)}
    for cycle, (v_out, weights) in enumerate(samples):
        if cycle in due and not any(cycle - lat < r <= cycle for r in reset):
            assert v_out == 1, f"valid_out low at cycle {cycle}"
            assert weights == expected[due[cycle]].tolist(), f"wrong weights at cycle {cycle}"
        else:
            assert v_out == 0, f"valid_out high at cycle {cycle} with nothing due"
    return component


def reference_depth(genome: Genome) -> int:
    """Logic depth computed independently of emit.plan (ids are wires, constants level 0)."""
    n_in = genome.grid.n_inputs

    def level(pin):
        if pin < n_in:
            return 0
        in0, in1, gid = genome.nodes[pin - n_in]
        g = G.GATES[int(gid)]
        if gid == G.WIRE_ID:
            return level(int(in0))
        return 1 + max(level(int(p)) for p in (in0, in1)[: g.arity]) if g.arity else 0

    return max(level(int(p)) for p in genome.outputs)


# --- every gate -------------------------------------------------------------------------------
def every_gate_genome() -> Genome:
    """Two inputs; one node per seed27 gate reading (in0, in1), plus a gate of a gate and an
    id chain; every node is an output."""
    nodes = [[0, 1, gid] for gid in SEED27]
    mul, wire = 2 + SEED27.index(3), 2 + SEED27.index(G.WIRE_ID)
    nodes += [[mul, wire, 1], [2 + len(nodes), 0, G.WIRE_ID], [2 + len(nodes) + 1, 1, 2]]
    return chain_genome(2, nodes, list(range(2, 2 + len(nodes))))


def test_every_gate_combinational_matches_evaluator():
    genome = every_gate_genome()
    vectors = stimulus(2, 300, seed=1)
    component = build_component(genome)
    assert component.latency == 0 and not component.clocked
    got = simulate_comb(component, vectors)
    np.testing.assert_array_equal(got, genome.evaluate(vectors))
    # each gate also on its own: a wrong gate cannot hide behind another output
    for j, gid in enumerate(SEED27):
        np.testing.assert_array_equal(got[:, j], G.GATES[gid].apply(vectors[:, 0], vectors[:, 1]))


def test_every_gate_pipelined_matches_evaluator():
    genome = every_gate_genome()
    component = check_pipelined(genome, 1, stimulus(2, 100, seed=2))
    assert component.depth == reference_depth(genome) == 3  # sub(id(add(mul, id)), in1)
    assert component.latency == 3


def test_only_active_logic_is_emitted():
    # node 0 mul (inactive), node 1 add, node 2 id(node1), node 3 xor (inactive)
    genome = chain_genome(2, [[0, 1, 3], [0, 1, 1], [3, 0, G.WIRE_ID], [4, 0, 10]], [4, 3])
    text = to_verilog(build_component(genome), "act")
    assert " n1;" in text and " n0;" not in text and " n3;" not in text
    assert " n2;" not in text  # the id gate is a wire, not a signal
    assert sorted(plan(genome).gates) == [3]


# --- forms, latency, throughput --------------------------------------------------------------
@pytest.mark.parametrize("seed", [3, 11, 29])
def test_random_genomes_both_forms(seed):
    rng = np.random.default_rng(seed)
    genome = random_genome(grid_for(4, 6, 3, 8, 4, "seed27"), rng)
    vectors = stimulus(4, 120, seed)
    np.testing.assert_array_equal(simulate_comb(build_component(genome), vectors), genome.evaluate(vectors))
    depth = reference_depth(genome)
    for k in (1, 2, 3):
        component = check_pipelined(genome, k, vectors[:40])
        assert component.latency == max(1, math.ceil(depth / k))
        assert f"latency {component.latency} cycles" in component.__doc__


def deep_genome() -> Genome:
    """in0 -> inc -> shl1 -> sub(., in1) -> xor(., in0) -> neg: depth 5."""
    return chain_genome(2, [[0, 0, 13], [2, 0, 12], [3, 1, 2], [4, 0, 10], [5, 0, 4]], [6, 4, 0])


def test_pipeline_latency_and_back_to_back_throughput():
    genome = deep_genome()
    vectors = stimulus(2, 60, seed=5)
    for k, latency in ((1, 5), (2, 3), (4, 2), (5, 1), (9, 1)):
        component = build_component(genome, pipeline=k)
        assert component.latency == latency
        # one vector enters every cycle; N vectors leave in N + latency - 1 cycles
        samples, entered = simulate_pipelined(component, vectors, [True] * len(vectors) + [False] * latency)
        outs = [w for v, w in samples if v]
        assert len(outs) == len(vectors) and entered == list(range(len(vectors)))
        assert samples[latency - 1][0] == 1 and (latency == 1 or samples[latency - 2][0] == 0)
        np.testing.assert_array_equal(np.array(outs, np.int8), genome.evaluate(vectors))


def test_pipeline_with_gaps_and_reset():
    genome = deep_genome()
    vectors = stimulus(2, 30, seed=6)
    rng = np.random.default_rng(8)
    valid = [bool(v) for v in rng.integers(0, 2, 70)]
    check_pipelined(genome, 2, vectors, valid=valid)
    # a reset drops what is in flight; valid_in held high through it
    check_pipelined(genome, 1, vectors, valid=[True] * 20, reset={8})


def test_pipelined_registers_sit_every_k_levels():
    genome = deep_genome()
    text = to_verilog(build_component(genome, pipeline=2), "regs")
    # levels: n0 1, n1 2 | n2 3, n3 4 | n4 5; outputs n4, n2, in0 leave through bank 3
    regs = {line.split()[2] for line in text.splitlines() if line.startswith("  reg [7:0] ")}
    assert regs == {"n1_r1", "in0_r1", "in1_r1", "n3_r2", "n2_r2", "in0_r2", "n4_r3", "n2_r3", "in0_r3"}


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_bad_pipeline_is_a_user_error(bad):
    with pytest.raises(UserError, match="pipeline"):
        build_component(deep_genome(), pipeline=bad)


# --- wiring special cases ----------------------------------------------------------------------
def test_value_bank_outputs_share_nodes():
    # values 9, 8, -1 made once; six outputs read them (three through id wires)
    nodes = [[0, 0, 22], [2, 2, 19], [2, 2, 4], [3, 2, 1], [4, 0, G.WIRE_ID], [5, 0, 14], [7, 0, G.WIRE_ID]]
    genome = chain_genome(2, nodes, [5, 8, 5, 6, 8, 5])
    assert genome.evaluate(np.zeros((1, 2), np.int8)).tolist() == [[9, 8, 9, -1, 8, 9]]
    component = build_component(genome)
    assert plan(genome).outputs == (5, 7, 5, 4, 7, 5)
    vectors = stimulus(2, 5, seed=9)
    np.testing.assert_array_equal(simulate_comb(component, vectors), genome.evaluate(vectors))
    check_pipelined(genome, 1, vectors)
    text = to_verilog(component, "bank")
    assert text.count("assign n5 =") == 1  # one adder feeds three outputs


@pytest.mark.parametrize("pipeline", [None, 1])
def test_weights_bus_is_driven_by_one_assignment(pipeline):
    # one part-select assign per output made Icarus take minutes on 2,550 outputs (20,400 bits)
    nodes = [[0, 0, 22], [2, 2, 19], [2, 2, 4], [3, 2, 1]]
    genome = chain_genome(2, nodes, [5, 0, 3, 1, 4, 5, 2] * 20)
    text = to_verilog(build_component(genome, pipeline), "wide")
    assigns = [line for line in text.splitlines() if line.strip().startswith("assign weights")]
    assert len(assigns) == 1 and assigns[0].strip().startswith("assign weights = {"), assigns[:3]


def test_zero_input_circuit():
    # column 0 has nothing to read: constants with connection genes 0
    nodes = [[0, 0, 26], [0, 0, 23], [0, 1, 2], [2, 0, 12], [3, 1, 3], [4, 0, G.WIRE_ID]]
    genome = chain_genome(0, nodes, [2, 5, 3, 1, 0], "seed27")
    component = build_component(genome)
    assert "stored" not in component.signature.members
    assert [p["name"] for p in describe_ports(component)] == ["weights"]
    expected = genome.evaluate(np.zeros((1, 0), np.int8))
    np.testing.assert_array_equal(simulate_comb(component, np.zeros((1, 0), np.int8)), expected)
    check_pipelined(genome, 1, np.zeros((6, 0), np.int8))
    assert "stored" not in to_verilog(build_component(genome, 2), "noin")


def test_pass_through_and_constant_outputs_are_wires():
    # in0..in2 = pins 0-2; n0 const 0, n1 const -128, n2 = id(n1), n3 mul (inactive)
    nodes = [[0, 0, 24], [1, 1, 25], [4, 0, G.WIRE_ID], [0, 1, 3]]
    genome = chain_genome(3, nodes, [2, 0, 3, 5, 1, 0])
    p = plan(genome)
    assert p.depth == 0 and all(p.is_constant(q) for q in p.gates)
    vectors = stimulus(3, 50, seed=10)
    component = build_component(genome)
    np.testing.assert_array_equal(simulate_comb(component, vectors), genome.evaluate(vectors))
    text = to_verilog(component, "wires")
    # element 0 is the lowest byte, so it comes last in the one concatenation
    assert "assign weights = { stored[7:0], stored[15:8], 16'h8000, stored[7:0], stored[23:16] };" in text
    piped = check_pipelined(genome, 3, vectors)
    assert piped.latency == 1  # outputs are always registered in the pipelined form


# --- ports and Yosys -----------------------------------------------------------------------------
def yosys_ports(tmp_path, text: str, top: str, kind: str) -> dict:
    """Read the text with Yosys (pyosys, own process): hierarchy -check, proc, check -assert;
    return {port: (direction, width)} from its JSON netlist."""
    import json
    import subprocess
    import sys

    src = tmp_path / f"{top}.{'v' if kind == 'verilog' else 'il'}"
    src.write_text(text)
    out = tmp_path / f"{top}.yosys.json"
    script = (
        "from pyosys import libyosys as ys\n"
        "d = ys.Design()\n"
        f"for cmd in ['read_{kind} {src}', 'hierarchy -check -top {top}', 'proc', 'check -assert',"
        f" 'write_json {out}']:\n"
        "    ys.run_pass(cmd, d)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    ports = json.loads(out.read_text())["modules"][top]["ports"]
    return {n: (p["direction"], len(p["bits"])) for n, p in ports.items()}


@pytest.mark.parametrize("pipeline", [None, 2])
def test_verilog_and_rtlil_read_by_yosys(tmp_path, pipeline):
    genome = every_gate_genome()
    component = build_component(genome, pipeline)
    expected = {p["name"]: (p["direction"], p["width"]) for p in describe_ports(component)}
    assert expected["stored"] == ("input", 16) and expected["weights"] == ("output", 8 * genome.grid.n_outputs)
    assert yosys_ports(tmp_path, to_verilog(component, "every_gate"), "every_gate", "verilog") == expected
    assert yosys_ports(tmp_path, to_rtlil(component, "every_gate"), "every_gate", "rtlil") == expected


# --- ROM baseline ----------------------------------------------------------------------------------
def test_rom_reads_every_word(tmp_path):
    words = [26, -61, -64, -60, 22, -25, 102, -5, 32, 32, -62, -9, -12, -32, -96, -76, -128, 127, 0]
    rom = build_rom(words)
    assert rom.latency == 0 and rom.addr.shape().width == 5
    got = []

    async def bench(ctx):
        for address in range(32):
            ctx.set(rom.addr, address)
            got.append(ctx.get(rom.data))

    sim = Simulator(rom)
    sim.add_testbench(bench)
    sim.run()
    assert got == words + [0] * (32 - len(words))
    ports = yosys_ports(tmp_path, to_verilog(rom, "ring_rom"), "ring_rom", "verilog")
    assert ports == {"addr": ("input", 5), "data": ("output", 8)}


def test_registered_rom_has_latency_one(tmp_path):
    words = [5, -7, 100]
    rom = build_rom(words, registered=True)
    top = Module()
    top.domains.sync = ClockDomain("sync")
    top.submodules.rom = rom
    got = []

    async def bench(ctx):
        for address in (2, 0, 1, 3):
            ctx.set(rom.addr, address)
            await ctx.tick()
            got.append(ctx.get(rom.data))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [100, 5, -7, 0]
    assert [p["name"] for p in describe_ports(rom)] == ["clk", "rst", "addr", "data"]
    ports = yosys_ports(tmp_path, to_rtlil(rom, "reg_rom"), "reg_rom", "rtlil")
    assert ports == {"clk": ("input", 1), "rst": ("input", 1), "addr": ("input", 2), "data": ("output", 8)}


def test_rom_rejects_bad_contents():
    with pytest.raises(UserError):
        build_rom([])
    with pytest.raises(UserError):
        build_rom([1, 200])
