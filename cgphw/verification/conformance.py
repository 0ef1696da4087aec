"""Per-gate conformance: every gate's Amaranth expression, as hardware, equals its int8
semantics (``Gate.apply``) on all 65,536 input pairs.

One design holds every gate side by side, repeated over ``lanes`` copies that each take
their own ``b``: one simulation step checks ``lanes`` pairs of every gate, so all pairs
take 65,536 / lanes steps in a single build.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cgphw import gates as G
from cgphw.errors import UserError
from cgphw.progress import ProgressCallback, step

DEFAULT_LANES = 16


def all_gate_ids() -> tuple[int, ...]:
    return tuple(sorted(G.GATES))


def gates_component(ids, lanes: int):
    """Ports: ``a`` signed(8); ``b`` lanes x signed(8); per gate ``g<id>`` lanes x signed(8)
    whose element ``lane`` is the gate applied to (a, b[lane]). (One output port per gate:
    Icarus slows to a crawl when hundreds of slices drive one wide output bus; 16 lanes
    measured fastest there.)"""
    from amaranth.hdl import Module, signed
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out

    class AllGates(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(signed(8)), "b": In(data.ArrayLayout(signed(8), lanes)),
                              **{f"g{gid}": Out(data.ArrayLayout(signed(8), lanes)) for gid in ids}})

        def elaborate(self, platform):
            m = Module()
            for gid in ids:
                out = getattr(self, f"g{gid}")
                for lane in range(lanes):
                    m.d.comb += out[lane].eq(G.gate(gid).amaranth(self.a, self.b[lane]))
            return m

    return AllGates()


def pair_schedule(lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """a int8 [steps]; b int8 [steps, lanes]: every (a, b) pair exactly once."""
    if lanes < 1 or 256 % lanes:
        raise UserError(f"lanes must divide 256, got {lanes}")
    all_b = np.arange(256, dtype=np.uint8).view(np.int8)
    a = np.repeat(all_b, 256 // lanes)
    b = np.tile(all_b.reshape(-1, lanes), (256, 1))
    return a, b


def expected_bytes(ids, lanes: int) -> np.ndarray:
    """uint8 [steps, len(ids), lanes]: the bytes of each gate's port at each step, from Gate.apply."""
    a, b = pair_schedule(lanes)
    table = G.lookup_table(ids)  # [k, 256, 256] indexed by unsigned a, b
    ua, ub = a.view(np.uint8).astype(np.intp), b.view(np.uint8).astype(np.intp)
    out = table[:, ua[:, None], ub]  # [k, steps, lanes]
    return np.ascontiguousarray(out.transpose(1, 0, 2)).view(np.uint8)


@dataclass
class Conformance:
    simulator: str
    ids: tuple[int, ...]
    pairs: int = 0  # pairs checked per gate
    wrong: dict[int, int] = field(default_factory=dict)  # gate id -> wrong pairs
    first: dict[int, dict] = field(default_factory=dict)  # gate id -> first wrong pair
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.pairs == 65536 and not self.wrong

    def record(self, gid: int, got: np.ndarray, want: np.ndarray, a: int, b_row: np.ndarray) -> None:
        """Note the lanes of gate ``gid`` whose byte differs (got, want: uint8 [lanes])."""
        for lane in np.flatnonzero(got != want):
            self.wrong[gid] = self.wrong.get(gid, 0) + 1
            self.first.setdefault(gid, {"gate": G.gate(gid).name, "a": a, "b": int(b_row[lane]),
                                        "expected": int(want.view(np.int8)[lane]),
                                        "got": int(got.view(np.int8)[lane])})

    def to_json(self) -> dict:
        return {"simulator": self.simulator, "gates": len(self.ids), "pairs_per_gate": self.pairs,
                "wrong": {G.gate(i).name: n for i, n in self.wrong.items()},
                "first_wrong": {G.gate(i).name: d for i, d in self.first.items()},
                "passed": self.passed, "seconds": round(self.seconds, 2)}


def check_amaranth(ids=None, lanes: int = DEFAULT_LANES, progress: ProgressCallback | None = None) -> Conformance:
    from amaranth.hdl import Value
    from amaranth.sim import Simulator

    ids = tuple(ids or all_gate_ids())
    dut = gates_component(ids, lanes)
    a, b = pair_schedule(lanes)
    want = expected_bytes(ids, lanes)
    b_words = [int.from_bytes(row.tobytes(), "little") for row in b]
    result = Conformance("amaranth", ids)
    a_sig, b_sig = Value.cast(dut.a), Value.cast(dut.b)
    outs = [Value.cast(getattr(dut, f"g{gid}")) for gid in ids]

    async def bench(ctx):
        for k in range(len(a)):
            if k % 64 == 0:
                step(progress, "simulating every gate on amaranth (input pairs)", k * lanes, 65536)
            ctx.set(a_sig, int(a[k]))
            ctx.set(b_sig, b_words[k])
            for g, gid in enumerate(ids):
                got = np.frombuffer(ctx.get(outs[g]).to_bytes(lanes, "little"), np.uint8)
                if not np.array_equal(got, want[k, g]):
                    result.record(gid, got, want[k, g], int(a[k]), b[k])
            await ctx.delay(1e-9)
        result.pairs = 65536
        step(progress, "simulating every gate on amaranth (input pairs)", 65536, 65536)

    start = time.perf_counter()
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    result.seconds = time.perf_counter() - start
    return result


def check_cocotb(sim: str, ids=None, lanes: int = DEFAULT_LANES, workdir: str | Path | None = None,
                 progress: ProgressCallback | None = None) -> Conformance:
    """The same design converted to Verilog by Amaranth, checked by tb_gates.py on ``sim``."""
    from amaranth.back import verilog

    from cgphw.verification.backends import cocotb_backend

    backend = cocotb_backend(sim)
    ids = tuple(ids or all_gate_ids())
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cgphw-gates-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        source = work / "cgphw_gates.v"
        source.write_text(verilog.convert(gates_component(ids, lanes), name="cgphw_gates"))
        a, b = pair_schedule(lanes)
        np.savez(work / "gates_stimulus.npz", ids=np.array(ids), a=a, b=b, expected=expected_bytes(ids, lanes))
        run = backend.run_testbench([source], "cgphw_gates", "cgphw.verification.tb_gates", work,
                                    {"CGPHW_STIMULUS": str(work / "gates_stimulus.npz")}, progress)
        result = Conformance(sim, ids)
        if run.report is None:
            raise RuntimeError(f"the {sim} conformance simulation did not finish:\n{run.log_tail()}")
        result.pairs = run.report["pairs"]
        for gid, n in run.report["wrong"].items():
            result.wrong[int(gid)] = n
            result.first[int(gid)] = run.report["first_wrong"][gid]
        if not run.passed and not result.wrong:
            raise RuntimeError(f"the {sim} conformance test failed:\n{run.log_tail()}")
    result.seconds = time.perf_counter() - start
    return result
