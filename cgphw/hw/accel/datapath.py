"""The int8 layer engine: an Amaranth component that computes a conv2d or linear layer from
streamed activations and weights fetched from a weight source (dataflow in ``plan``).

Ports (Verilog: arrays are flat buses, element i at bits [8i+7:8i]; ``clk``, ``rst``):

=============  ====  =============================================================
in_data        in    T activation codes (uint8): one slice of a window (depthwise: P x T,
                     lane after lane, each lane's slice of its own channel's window)
in_valid       in    in_data holds a word
in_ready       out   the engine takes the word at this clock edge (low while loading weights)
out_data       out   P output codes (uint8), one per lane, for one output position
out_valid      out   out_data holds a result
w_addr/w_read  out   only with an external weight memory: the step to read
w_data         in    ... and its values, one cycle after w_read
=============  ====  =============================================================

Pipeline: the accepted word is registered (stage A); the lanes' dot products with the
buffered weights are added to the accumulators (stage B: reset on a position's first slice);
after the last slice the accumulators are requantised (stage C, see ``requant``): for torch's
layers with a fixed-point multiplier and one shift, for TFLite's with its Q31 multiplier and
per-channel shift; then clamped (ReLU: at the output zero point; TFLite: the fused
activation's range). A result leaves 3 cycles after its last word. ``in_ready`` depends only on
the engine's state.

``fault`` builds a deliberately wrong engine (to show that verification catches it):
``requant-shift`` (one more bit of shift), ``weight-bit`` (bit 0 of the value the buffer's
first slot takes from the source, flipped on its way into the buffer) and ``acc-reset``
(the accumulator is cleared on slice 1 instead of slice 0: an off-by-one in its reset).
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from cgphw.errors import UserError
from cgphw.hw.accel.plan import Geometry, LoadPlan
from cgphw.hw.accel.requant import Requant, TfliteRequant
from cgphw.hw.accel.source import SourceSpec, build_source

FAULTS = ("requant-shift", "weight-bit", "acc-reset")


def _bits(n: int) -> int:
    return max(1, (max(n, 1) - 1).bit_length())


class LayerEngine(wiring.Component):
    def __init__(self, geometry: Geometry, requant: Requant | TfliteRequant, plan: LoadPlan, source: SourceSpec,
                 input_zero_point: int, fault: str | None = None):
        if fault is not None and fault not in FAULTS:
            raise UserError(f"unknown fault {fault!r}: choose one of {', '.join(FAULTS)}")
        if requant.channels != geometry.channels:
            raise UserError("the requantisation and the geometry disagree on the channel count")
        if plan.values != source.values or plan.steps != source.steps:
            raise UserError(f"the load plan reads {plan.steps} steps of {plan.values} values but the source "
                            f"yields {source.steps} of {source.values}")
        self.geometry, self.requant, self.plan, self.spec = geometry, requant, plan, source
        self.input_zero_point, self.fault = int(input_zero_point), fault
        self.source = build_source(source)
        self.external = "w_data" in self.source.signature.members
        members = {"in_data": In(data.ArrayLayout(unsigned(8), geometry.word_codes)), "in_valid": In(1),
                   "in_ready": Out(1), "out_data": Out(data.ArrayLayout(unsigned(8), geometry.lanes)),
                   "out_valid": Out(1)}
        if self.external:
            ext = self.source.signature.members
            members.update({"w_addr": Out(ext["w_addr"].shape), "w_read": Out(1), "w_data": In(ext["w_data"].shape)})
        super().__init__(wiring.Signature(members))
        self.latency = 3  # cycles from the last word of a position to its result
        self.clocked = True  # clk and rst ports (emit.describe_ports)

    def cycles_per_image(self) -> int:
        """Clock cycles one image takes when words arrive whenever the engine is ready."""
        return cycles_per_image(self.geometry, self.plan, self.source.latency)

    def elaborate(self, platform):
        m = Module()
        g, plan, rq = self.geometry, self.plan, self.requant
        m.submodules.source = source = self.source
        if self.external:
            m.d.comb += [self.w_addr.eq(source.w_addr), self.w_read.eq(source.w_read),
                         source.w_data.eq(self.w_data)]

        # --- schedule state ---------------------------------------------------------------
        loading = Signal(init=1)
        group = Signal(range(max(g.groups, 2)))
        position = Signal(range(max(g.positions, 2)))
        in_chunk = Signal(range(max(g.reuse, 2)))
        slice_ = Signal(range(max(g.slices, 2)))

        # --- LOAD: request the group's steps, write what comes back ----------------------
        longest = max(len(s) for s in plan.group_steps)
        issued = Signal(range(longest + 1))
        n_steps = Array(Const(len(s), range(longest + 1)) for s in plan.group_steps)[group]
        step_table = Array(Array(Const(s, source.step.shape()) for s in steps) for steps in plan.group_steps)
        requesting = loading & (issued < n_steps)
        m.d.comb += [source.request.eq(requesting), source.step.eq(step_table[group][issued])]
        # the index of each request travels beside the source's latency
        pending_i, pending_v = Signal.like(issued), Signal()
        chain_i, chain_v = issued, requesting
        for stage in range(source.latency):
            nxt_i, nxt_v = Signal.like(issued, name=f"req_i{stage}"), Signal(name=f"req_v{stage}")
            m.d.sync += [nxt_i.eq(chain_i), nxt_v.eq(chain_v)]
            chain_i, chain_v = nxt_i, nxt_v
        m.d.comb += [pending_i.eq(chain_i), pending_v.eq(chain_v & source.valid)]
        with m.If(requesting):
            m.d.sync += issued.eq(issued + 1)

        weights = [[Signal(signed(8), name=f"w{lane}_{k}", reset_less=True) for k in range(g.fan_in)]
                   for lane in range(g.lanes)]
        values = [source.values[v] for v in range(plan.values)]
        if self.fault == "weight-bit":  # a value the buffer takes (value 0 may be a stored weight it never reads)
            first = plan.writes[0][0][1]
            values[first] = values[first] ^ 1
        slot_writer = [{(ln, kk): (i, v) for i, v, ln, kk in writes} for writes in plan.writes]
        for lane in range(g.lanes):
            for k in range(g.fan_in):
                writers = {grp: slot_writer[grp][lane, k] for grp in range(g.groups)}
                if len(set(writers.values())) == 1:  # the same writer in every group: no group test
                    (i, v), = set(writers.values())
                    with m.If(pending_v & (pending_i == i)):
                        m.d.sync += weights[lane][k].eq(values[v])
                else:
                    for grp, (i, v) in writers.items():
                        with m.If(pending_v & (pending_i == i) & (group == grp)):
                            m.d.sync += weights[lane][k].eq(values[v])
        with m.If(pending_v & (pending_i == n_steps - 1)):  # the group's last write: start streaming
            m.d.sync += [loading.eq(0), issued.eq(0)]

        # --- RUN: accept words ------------------------------------------------------------
        accept = Signal()
        m.d.comb += [self.in_ready.eq(~loading), accept.eq(self.in_valid & ~loading)]
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_slice, a_group = Signal.like(slice_), Signal.like(group)
        x = [Signal(unsigned(8), name=f"x{t}", reset_less=True) for t in range(g.word_codes)]
        first_slice = 1 if self.fault == "acc-reset" else 0
        m.d.sync += a_valid.eq(accept)
        with m.If(accept):
            m.d.sync += [x[t].eq(self.in_data[t]) for t in range(g.word_codes)]
            m.d.sync += [a_first.eq(slice_ == first_slice), a_last.eq(slice_ == g.slices - 1),
                         a_slice.eq(slice_), a_group.eq(group)]
            with m.If(slice_ == g.slices - 1):
                m.d.sync += slice_.eq(0)
                last_position = position == g.positions - 1
                chunk_done = (in_chunk == g.reuse - 1) | last_position
                m.d.sync += [position.eq(position + 1), in_chunk.eq(in_chunk + 1)]
                with m.If(chunk_done):
                    m.d.sync += [loading.eq(1), in_chunk.eq(0)]
                with m.If(last_position):
                    m.d.sync += position.eq(0)
                    if g.groups > 1:
                        m.d.sync += group.eq(Mux(group == g.groups - 1, 0, group + 1))
            with m.Else():
                m.d.sync += slice_.eq(slice_ + 1)

        # --- stage B: multiply-accumulate -------------------------------------------------
        zp = Const(self.input_zero_point, unsigned(8))
        centred = [(x[t] - zp).as_signed() for t in range(g.word_codes)]  # -255..255
        acc = [Signal(signed(rq.acc_bits), name=f"acc{lane}") for lane in range(g.lanes)]
        b_valid, b_group = Signal(), Signal.like(group)
        for lane in range(g.lanes):
            own = lane * g.taps if g.depthwise else 0  # where the lane's codes sit in the word
            taps = []
            for t in range(g.taps):
                options = [weights[lane][s * g.taps + t] for s in range(g.slices)]
                w = options[0] if g.slices == 1 else Array(options)[a_slice]
                taps.append(centred[own + t] * w)
            dot = _tree_sum(taps)
            with m.If(a_valid):
                with m.If(a_first):
                    m.d.sync += acc[lane].eq(dot)
                with m.Else():
                    m.d.sync += acc[lane].eq(acc[lane] + dot)
        m.d.sync += [b_valid.eq(a_valid & a_last), b_group.eq(a_group)]

        # --- stage C: requantise and clamp -------------------------------------------------
        for lane in range(g.lanes):
            channels = [grp * g.lanes + lane for grp in range(g.groups)]
            if isinstance(rq, TfliteRequant):
                code = self._tflite_requant(m, rq, acc[lane], lane, channels, b_group)
            else:
                code = self._fixed_point_requant(m, rq, acc[lane], lane, channels, b_group)
            with m.If(b_valid):
                m.d.sync += self.out_data[lane].eq(code)
        m.d.sync += self.out_valid.eq(b_valid)
        return m

    def _per_channel(self, values: list[int], shape, b_group):
        """Each channel's constant, chosen by the lane group (a constant when all are equal)."""
        if len(set(values)) == 1:
            return Const(values[0], shape)
        return Array(Const(v, shape) for v in values)[b_group]

    def _clamp(self, m: Module, q, low: int, high: int, lane: int):
        code = Signal(unsigned(8), name=f"code{lane}")
        with m.If(q < low):
            m.d.comb += code.eq(low)
        with m.Elif(q > high):
            m.d.comb += code.eq(high)
        with m.Else():
            m.d.comb += code.eq(q[:8])
        return code

    def _tflite_requant(self, m: Module, rq: TfliteRequant, acc, lane: int, channels: list[int], b_group):
        """TFLite's rounding, as ``TfliteRequant`` writes it: bias, left shift, Q31 multiply with
        the 2**30 nudge and a 31-bit shift, then the rounding right shift of the channel."""
        wide = signed(33 + 32 + 1)  # (int32 << left) x Q31 + nudge
        faulty = 1 if self.fault == "requant-shift" else 0
        bias = self._per_channel([rq.biases[c] for c in channels], signed(33), b_group)
        left = self._per_channel([rq.left(c) for c in channels], unsigned(5), b_group)
        right = [rq.right(c) + faulty for c in channels]
        mult = self._per_channel([rq.multipliers[c] for c in channels], signed(33), b_group)
        biased = Signal(signed(33), name=f"biased{lane}")
        m.d.comb += biased.eq((acc + bias) << left)  # tflite_requant_params checked it stays in int32
        high = Signal(signed(34), name=f"high{lane}")
        m.d.comb += high.eq((biased * mult + Const(1 << 30, wide)) >> 31)
        half = self._per_channel([(1 << (r - 1)) if r else 0 for r in right], unsigned(32), b_group)
        away = self._per_channel([1 if r else 0 for r in right], unsigned(1), b_group)
        shift = self._per_channel(right, unsigned(6), b_group)
        y = Signal(signed(36), name=f"y{lane}")
        m.d.comb += y.eq(((high + half - (high[-1] & away)) >> shift) + rq.zero_point)
        return self._clamp(m, y, rq.low, rq.high, lane)

    def _fixed_point_requant(self, m: Module, rq: Requant, acc, lane: int, channels: list[int], b_group):
        shift = rq.shift + (1 if self.fault == "requant-shift" else 0)
        mult = self._per_channel([rq.multipliers[c] for c in channels], signed(rq.mult_bits + 1), b_group)
        offset = self._per_channel([rq.offsets[c] for c in channels], signed(rq.product_bits), b_group)
        scaled = Signal(signed(rq.product_bits), name=f"scaled{lane}")
        m.d.comb += scaled.eq(acc * mult + offset)
        q = Signal(signed(rq.product_bits - shift + 1), name=f"q{lane}")
        m.d.comb += q.eq((scaled >> shift) + rq.zero_point)
        return self._clamp(m, q, rq.low, rq.high, lane)


def cycles_per_image(geometry: Geometry, plan: LoadPlan, source_latency: int) -> int:
    """Clock cycles one image takes when words arrive whenever the engine is ready: every
    group's load (its steps plus the source's latency, once per chunk) and one per word."""
    loads = sum(len(steps) + source_latency for steps in plan.group_steps) * geometry.chunks
    return loads + geometry.words_per_image


def _tree_sum(terms):
    """A balanced adder tree (shallower logic than a chain)."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]
