"""Insertion into a TFLite network runs only the operators from the changed layer on, fed
with the unchanged network's cached activations: the logits equal the whole patched
network's bit for bit, early, inside a residual block (two live tensors) and at the end."""
import numpy as np
import pytest

from cgphw.nn import tflite_cut
from cgphw.nn.tflite_eval import int8_logits

pytest.importorskip("ai_edge_litert.interpreter")


@pytest.mark.parametrize("layer, live", [("conv0", 1), ("dw13", 2), ("conv52", 1)])
def test_the_cut_from_cached_activations_equals_the_whole_network(shipped_tflite, layer, live):
    net, pixels = shipped_tflite
    model, images = net.model, pixels[:3]
    start = model.layer(layer).operator.index
    assert len(tflite_cut.live_tensors(model, start)) == live
    codes = net.codes(layer)
    codes.reshape(-1)[::3] = 0
    changed = net.with_codes({layer: codes})
    cache = tflite_cut.ActivationCache()
    whole = int8_logits(changed, images, cut=False)
    first = int8_logits(changed, images, cache=cache)
    assert len(cache.entries) == 1 and cache.size == 3 * tflite_cut.bytes_per_image(model, start)
    cached = cache.get(next(iter(cache.entries)))
    again = int8_logits(net.with_codes({layer: -codes}), images, cache=cache)  # another circuit, same cut
    assert cache.get(next(iter(cache.entries))) is cached and len(cache.entries) == 1
    assert np.array_equal(first, whole)
    assert np.array_equal(again, int8_logits(net.with_codes({layer: -codes}), images, cut=False))
    assert not np.array_equal(whole, int8_logits(net, images))  # the change reached the logits


def test_activations_that_do_not_fit_run_the_whole_network(shipped_tflite):
    net, pixels = shipped_tflite
    codes = net.codes("conv51")
    codes[:5] = 0
    changed = net.with_codes({"conv51": codes})
    start = net.model.layer("conv51").operator.index
    small = tflite_cut.ActivationCache(limit=2 * tflite_cut.bytes_per_image(net.model, start) - 1)
    assert not tflite_cut.fits(net.model, start, 2, small)
    assert np.array_equal(int8_logits(changed, pixels[:2], cache=small), int8_logits(changed, pixels[:2], cut=False))
    assert not small.entries


def test_the_cache_drops_the_least_recently_used_entry():
    cache = tflite_cut.ActivationCache(limit=250)
    cache.put("a", (np.zeros(100, np.int8),))
    cache.put("b", (np.zeros(100, np.int8),))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", (np.zeros(100, np.int8),))
    assert list(cache.entries) == ["a", "c"] and cache.size == 200
    cache.put("huge", (np.zeros(251, np.int8),))  # larger than the whole cache: not kept
    assert list(cache.entries) == ["a", "c"]
