"""`ggufscope perplexity` against llama.cpp's own llama-perplexity (built from
llama-cpp-python's source by setup.sh), same file, text and context, f32 KV
cache on both sides: the same chunk-by-chunk estimates and the same KL
divergence statistics."""
from __future__ import annotations

import json
import os
import re
import subprocess
import warnings

import pytest

from conftest import ROOT, SHARED

STORIES = os.path.join(SHARED, "models", "stories260K.gguf")
TEXT = os.path.join(ROOT, "data", "story.txt")
LLAMA_PPL = os.path.join(ROOT, ".cache", "llama-tools", "bin", "llama-perplexity")


def llama_perplexity(*args, expect=r"Final estimate: PPL = [0-9.]+"):
    """llama-perplexity's stdout + stderr. In CI on 2026-11-28 and in one of three local full runs of the suite
    (never in 46 runs of it alone) it exited 0 with no final estimate in what was captured; the oracle's output is then taken from a second run,
    and what the first printed is shown as a warning, so that the next occurrence says what it was."""
    if not os.path.exists(LLAMA_PPL):
        pytest.skip("llama-perplexity not built: run scripts/setup.sh")
    outs = []
    for _ in range(2):
        p = subprocess.run([LLAMA_PPL, *args, "-ctk", "f32", "-ctv", "f32", "-t", "2"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        outs.append(p.stdout + p.stderr)
        if re.search(expect, outs[-1]):
            if len(outs) > 1:
                warnings.warn(f"llama-perplexity {' '.join(args)}: first run lacked /{expect}/; it printed:\n"
                              + outs[0][-3000:])
            return outs[-1]
    pytest.fail(f"llama-perplexity {' '.join(args)} printed nothing matching /{expect}/ twice; last output:\n"
                + outs[-1][-3000:])


@pytest.mark.parametrize("ctx", [64, 128])
def test_perplexity_matches_llama_perplexity(ctx, ggufscope):
    out = llama_perplexity("-m", STORIES, "-f", TEXT, "-c", str(ctx))
    want = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+)", out)]
    final = float(re.search(r"Final estimate: PPL = ([0-9.]+)", out).group(1))
    ours = json.loads(subprocess.run([ggufscope, "perplexity", STORIES, "-f", TEXT, "-c", str(ctx), "--json"],
                                     check=True, capture_output=True, text=True).stdout)
    assert len(ours["running"]) == len(want) > 2
    for a, b in zip(ours["running"], want):
        assert abs(a - b) / b < 1e-3, (ours["running"], want)
    assert abs(ours["ppl"] - final) / final < 1e-3


def test_kl_divergence_matches_llama_perplexity(ggufscope, tmp_path):
    # A damaged copy (one norm halved) against the original as the base.
    bad = str(tmp_path / "bad.gguf")
    subprocess.run([ggufscope, "corrupt", STORIES, bad, "--tensor", "blk.2.attn_norm.weight", "--scale", "0.5"],
                   check=True, capture_output=True)
    base_ll, base_ours = str(tmp_path / "base.kld"), str(tmp_path / "base.lp")
    llama_perplexity("-m", STORIES, "-f", TEXT, "-c", "128", "--kl-divergence-base", base_ll)
    out = llama_perplexity("-m", bad, "-f", TEXT, "-c", "128", "--kl-divergence-base", base_ll, "--kl-divergence",
                           expect=r"Same top p:\s+[0-9.]+")
    want_kl = float(re.search(r"Mean\s+KLD:\s+([0-9.]+)", out).group(1))
    want_same = float(re.search(r"Same top p:\s+([0-9.]+)", out).group(1))
    subprocess.run([ggufscope, "perplexity", STORIES, "-f", TEXT, "-c", "128", "--save-logits", base_ours], check=True,
                   capture_output=True)
    ours = json.loads(subprocess.run([ggufscope, "perplexity", bad, "-f", TEXT, "-c", "128", "--kl-base", base_ours,
                                      "--json"], check=True, capture_output=True, text=True).stdout)["kl"]
    # llama.cpp stores the base as 16-bit quantized log-probabilities; hence a few percent.
    assert want_kl > 0.01
    assert abs(ours["mean"] - want_kl) / want_kl < 0.05, (ours["mean"], want_kl)
    assert abs(100 * ours["same_top"] - want_same) < 1.0, (ours["same_top"], want_same)
