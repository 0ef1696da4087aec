"""The task of a campaign run, from its [task] settings.

Besides every `cgphw task make` selector, experiments use two kinds the study needs:
  values:IN->OUT               one item: the values IN (a..b or a,b,c) -> the values OUT;
                               no network (the study's worst case: 0..63 -> all 256 values)
  shared-core-ring:A,B[:mux|:select]
                               one circuit for the core -> ring kernels of several layers.
                               mux: one block of 16 outputs per layer, each item counts only
                               its own layer's block (the other blocks are don't-cares); the
                               hardware picks a block per layer with multiplexers outside the
                               circuit. select (multiplexer-free): one block of 16 outputs and
                               one more input carrying the layer's index.
``zero_targets`` sets every target to 0 (the study's zero-outer-ring baseline).
"""
from __future__ import annotations

import numpy as np

from cgphw.campaign import stages
from cgphw.errors import UserError
from cgphw.task import Task

SHARED_MODES = ("mux", "select")


def needs_model(task: dict) -> bool:
    return not task["selector"].startswith("values:")


def build_task(task: dict, model) -> Task:
    """The run's Task (``model`` may be None for values: tasks)."""
    selector = task["selector"]
    if selector.startswith("values:"):
        built = values_task(selector)
    elif selector.startswith("shared-core-ring"):
        built = shared_task(model, selector)
    else:
        built = stages.network_task(model, selector, task.get("layer"), task.get("filters"))
    if task.get("zero_targets"):
        meta = dict(built.meta, zero_targets=True)
        built = Task(built.inputs, np.zeros_like(built.targets), built.weights, built.mask, meta)
    return built


def parse_values(text: str, what: str) -> list[int]:
    """'a..b' (inclusive) or 'a,b,c' as int8 values."""
    text = text.strip()
    try:
        if ".." in text:
            lo, hi = (int(v) for v in text.split(".."))
            values = list(range(lo, hi + 1))
        else:
            values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be a range a..b or comma-separated integers, got {text!r}") from None
    if not values or min(values) < -128 or max(values) > 127:
        raise UserError(f"{what} must hold int8 values (-128..127), got {text!r}")
    return values


def values_task(selector: str) -> Task:
    source, arrow, target = selector.removeprefix("values:").partition("->")
    if not arrow:
        raise UserError(f"selector {selector!r} must look like values:IN->OUT, e.g. values:0..63->-128..127")
    ins = parse_values(source, "the inputs of a values: selector") if source.strip() else []
    outs = parse_values(target, "the outputs of a values: selector")
    return Task(np.array([ins], np.int8).reshape(1, len(ins)), np.array([outs], np.int8),
                meta={"selector": selector, "input_names": [f"value {v}" for v in ins],
                      "output_names": [f"value {v}" for v in outs]})


def shared_task(model, selector: str) -> Task:
    """One circuit for the core -> ring kernels of several layers (see the module doc)."""
    parts = selector.split(":")
    mode = parts[2] if len(parts) > 2 else "mux"
    layers = [n for n in (parts[1] if len(parts) > 1 else "").split(",") if n]
    if parts[0] != "shared-core-ring" or len(parts) > 3 or mode not in SHARED_MODES or len(layers) < 2:
        raise UserError(f"selector {selector!r} must look like shared-core-ring:A,B[:mux|:select] "
                        "with two or more layers")
    if len(set(layers)) != len(layers):
        raise UserError(f"selector {selector!r} names a layer twice")
    per_layer = [stages.network_task(model, f"core-ring:{name}") for name in layers]
    n_ring = per_layer[0].n_outputs
    ins, outs, mask, at_in, at_out = [], [], [], [], []
    for k, part in enumerate(per_layer):
        for i in range(part.n_items):
            where = part.meta["targets_at"][i]
            if mode == "select":
                ins.append(np.concatenate([[k], part.inputs[i]]))
                outs.append(part.targets[i])
                at_out.append(where)
            else:
                ins.append(part.inputs[i])
                row = np.zeros(n_ring * len(layers), np.int8)
                row[k * n_ring:(k + 1) * n_ring] = part.targets[i]
                outs.append(row)
                counts = np.zeros(n_ring * len(layers), bool)
                counts[k * n_ring:(k + 1) * n_ring] = True
                mask.append(counts)
                at_out.append(where * len(layers))  # don't-care blocks point at the item's own ring
            at_in.append(part.meta["inputs_from"][i])
    names = [f"{name} ring[{j}]" for name in layers for j in range(n_ring)] if mode == "mux" else \
        [f"ring[{j}]" for j in range(n_ring)]
    meta = {"selector": selector, "shared_layers": layers, "shared_mode": mode,
            "layers": {k: v for part in per_layer for k, v in part.meta["layers"].items()},
            "targets_at": at_out, "output_names": names,
            # 8-bit 2:1 multiplexers the mux form needs outside the circuit: (layers - 1) per ring weight
            "multiplexers": n_ring * (len(layers) - 1) if mode == "mux" else 0}
    if mode == "mux":
        meta["inputs_from"] = at_in
    else:
        meta["input_names"] = ["layer index"] + [f"core[{j}]" for j in range(per_layer[0].n_inputs)]
    return Task(np.array(ins, np.int8), np.array(outs, np.int8), mask=np.array(mask) if mask else None, meta=meta)
