"""`ggufscope hash` against llama.cpp's own `llama-gguf-hash` (built by
scripts/build_llama_tools.sh from llama-cpp-python 0.3.36's source): the same
lines, byte for byte, in the same order, for every model and every digest
choice; manifests written by either tool are accepted by the other; damage is
reported; malformed files end with exit 3 and a message.

What llama-gguf-hash does differently (and why the tests below don't compare
those cases line for line):
  * on a file it cannot parse (truncated, bad magic, missing) it crashes with
    SIGSEGV: gguf_init_from_file returns NULL and is used anyway;
  * it looks `uuid` lines up among the manifest's `sha256` lines, so a uuid
    check always reports Mismatch (or Not Found);
  * it ignores manifest lines naming tensors the file lacks (we fail them);
  * it only finds entries under the exact path string it was given (we also
    accept a manifest that names a file of the same name in another folder);
  * its exit codes: 1 mismatch, 3 missing entry, 4/5 unusable manifest; ours:
    2 mismatch, 3 missing entry / unusable manifest / unreadable model.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, all_models, model_id

LLAMA_HASH = os.path.join(ROOT, ".cache", "llama-tools", "bin", "llama-gguf-hash")
STORIES = next((m for m in all_models() if os.path.basename(m) == "stories260K.gguf"), all_models()[0])

MODES = [[], ["--all"], ["--no-layer", "--all"], ["--uuid"], ["--all", "--uuid"], ["--sha1", "--no-layer"]]


@pytest.fixture(scope="session")
def llama_hash() -> str:
    if not os.path.exists(LLAMA_HASH):
        pytest.skip(f"{LLAMA_HASH} missing: run scripts/build_llama_tools.sh to compare with llama-gguf-hash")
    return LLAMA_HASH


def run(cmd, cwd=None):
    return subprocess.run(cmd, capture_output=True, cwd=cwd, timeout=600)


def hash_cmd(ggufscope, *args):
    return [ggufscope, "hash", *args]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: " ".join(m) or "default")
@pytest.mark.parametrize("model", all_models(), ids=model_id)
def test_same_lines_as_llama(ggufscope, llama_hash, model, mode):
    ours = run(hash_cmd(ggufscope, *mode, model))
    theirs = run([llama_hash, *mode, model])
    assert theirs.returncode == 0, theirs.stderr.decode(errors="replace")
    assert ours.returncode == 0, ours.stderr.decode(errors="replace")
    assert ours.stdout == theirs.stdout


@pytest.mark.parametrize("threads", ["1", "2", "7"])
def test_thread_count_changes_nothing(ggufscope, threads):
    base = run(hash_cmd(ggufscope, "--all", "--uuid", "--threads", "1", STORIES)).stdout
    assert run(hash_cmd(ggufscope, "--all", "--uuid", "--threads", threads, STORIES)).stdout == base


def test_json_matches_text(ggufscope):
    text = run(hash_cmd(ggufscope, "--all", "--uuid", STORIES)).stdout.decode().splitlines()
    doc = json.loads(run(hash_cmd(ggufscope, "--all", "--uuid", "--json", STORIES)).stdout)
    assert [f"{l['type']:<8}  {l['hash']}  {l['name']}" for l in doc["lines"]] == text
    assert doc["model"]["uuid"] == text[-1].split()[1]


@pytest.mark.parametrize("model", all_models(), ids=model_id)
def test_llama_manifest_accepted(ggufscope, llama_hash, model, tmp_path):
    manifest = tmp_path / "manifest.txt"
    manifest.write_bytes(run([llama_hash, "--all", "--uuid", model]).stdout)
    # Without a digest flag both pick sha256 (the strongest in the manifest)
    # and print the same report.
    ours = run(hash_cmd(ggufscope, "--check", str(manifest), model))
    theirs = run([llama_hash, "--check", str(manifest), model])
    assert ours.returncode == 0, ours.stdout.decode()
    assert theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    # Every digest checked: every line Ok (llama-gguf-hash agrees except on uuid).
    ours = run(hash_cmd(ggufscope, "--all", "--uuid", "--check", str(manifest), model))
    assert ours.returncode == 0
    lines = ours.stdout.decode().splitlines()
    results = [l for l in lines if "  -  " in l]
    assert results and all(l.endswith("  -  Ok") for l in results)
    assert lines[-1] == f"Verification results for {manifest} - Success"


@pytest.mark.parametrize("model", all_models(), ids=model_id)
def test_our_manifest_accepted_by_llama(ggufscope, llama_hash, model, tmp_path):
    manifest = tmp_path / "manifest.txt"
    manifest.write_bytes(run(hash_cmd(ggufscope, "--all", model)).stdout)
    theirs = run([llama_hash, "--all", "--check", str(manifest), model])
    ours = run(hash_cmd(ggufscope, "--all", "--check", str(manifest), model))
    assert theirs.returncode == 0, theirs.stdout.decode()
    assert ours.returncode == 0
    assert ours.stdout == theirs.stdout


def _altered(manifest: str, tensor_index: int = 1):
    """The manifest with the sha256 of one tensor changed; returns (text, tensor name)."""
    lines = manifest.splitlines(keepends=True)
    sha = [i for i, l in enumerate(lines) if l.startswith("sha256") and ":" in l.split()[2]]
    i = sha[min(tensor_index, len(sha) - 1)]
    typ, digest, name = lines[i].split()
    bad = ("0" if digest[0] != "0" else "1") + digest[1:]
    lines[i] = f"{typ:<8}  {bad}  {name}\n"
    return "".join(lines), name


def test_altered_tensor_is_a_mismatch(ggufscope, llama_hash, tmp_path):
    original = run([llama_hash, "--all", STORIES]).stdout.decode()
    text, name = _altered(original)
    manifest = tmp_path / "bad.txt"
    manifest.write_text(text)
    ours = run(hash_cmd(ggufscope, "--check", str(manifest), STORIES))
    assert ours.returncode == 2
    out = ours.stdout.decode().splitlines()
    mismatched = [l for l in out if l.endswith("  -  Mismatch")]
    assert mismatched and all(l.split()[2] == name for l in mismatched)
    assert out[-1].endswith(" - Failure")
    # llama-gguf-hash reports the same lines, with its exit code 1.
    theirs = run([llama_hash, "--check", str(manifest), STORIES])
    assert theirs.returncode == 1
    assert theirs.stdout == ours.stdout


def test_tensor_missing_from_file_is_a_mismatch(ggufscope, llama_hash, tmp_path):
    text = run([llama_hash, "--all", STORIES]).stdout.decode()
    manifest = tmp_path / "extra.txt"
    manifest.write_text(text + f"sha256    {'ab' * 32}  {STORIES}:blk.99.attn_q.weight\n")
    ours = run(hash_cmd(ggufscope, "--check", str(manifest), STORIES))
    assert ours.returncode == 2
    assert f"sha256    -  {STORIES}:blk.99.attn_q.weight  -  Mismatch" in ours.stdout.decode().splitlines()
    assert b"blk.99.attn_q.weight" in ours.stderr
    # llama-gguf-hash never looks at such a line.
    assert run([llama_hash, "--check", str(manifest), STORIES]).returncode == 0


def test_manifest_from_another_folder(ggufscope, llama_hash, tmp_path):
    folder, base = os.path.split(STORIES)
    manifest = tmp_path / "published.txt"
    manifest.write_bytes(run([llama_hash, "--all", base], cwd=folder).stdout)  # names it "stories260K.gguf"
    ours = run(hash_cmd(ggufscope, "--check", str(manifest), STORIES))
    assert ours.returncode == 0, ours.stderr.decode()
    assert ours.stdout.decode().splitlines()[-1].endswith(" - Success")
    # llama-gguf-hash only knows the exact path string: Missing Entry (its 3).
    assert run([llama_hash, "--check", str(manifest), STORIES]).returncode == 3
    # A manifest for a file of another name is not this file's manifest.
    other = tmp_path / "other.gguf"
    shutil.copyfile(STORIES, other)
    assert run(hash_cmd(ggufscope, "--check", str(manifest), str(other))).returncode == 3


def test_unusable_manifest(ggufscope, tmp_path):
    missing = run(hash_cmd(ggufscope, "--check", str(tmp_path / "none.txt"), STORIES))
    assert missing.returncode == 3 and b"manifest" in missing.stderr
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"hello\x00\xff\nmd5 00 x\n")
    unknown = run(hash_cmd(ggufscope, "--check", str(junk), STORIES))
    assert unknown.returncode == 3 and b"no known hash type" in unknown.stderr


def _malformed(tmp_path):
    data = open(STORIES, "rb").read()
    files = {
        "truncated.gguf": data[: len(data) // 2],
        "header-only.gguf": data[:10],
        "bad-magic.gguf": b"GGUX" + data[4:],
        "html.gguf": b"<!DOCTYPE html><html>not found</html>",
        "empty.gguf": b"",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return [str(tmp_path / n) for n in files] + [str(tmp_path / "does-not-exist.gguf"), str(tmp_path)]


@pytest.mark.parametrize("args", [[], ["--all", "--uuid"], ["--json"]], ids=lambda a: " ".join(a) or "default")
def test_malformed_files_exit_3(ggufscope, tmp_path, args):
    # llama-gguf-hash dies of SIGSEGV on every one of these (0.3.36).
    for path in _malformed(tmp_path):
        r = run(hash_cmd(ggufscope, *args, path))
        assert r.returncode == 3, (path, r.returncode, r.stderr)
        assert r.stderr.startswith(b"ggufscope: "), path
        if "--json" in args:
            assert "error" in json.loads(r.stdout)
        else:
            assert r.stdout == b""


def test_malformed_file_with_manifest(ggufscope, llama_hash, tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_bytes(run([llama_hash, STORIES]).stdout)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(open(STORIES, "rb").read()[:100000])
    r = run(hash_cmd(ggufscope, "--check", str(manifest), str(truncated)))
    assert r.returncode == 3 and b"truncated" in r.stderr


def test_usage_errors(ggufscope):
    assert run(hash_cmd(ggufscope)).returncode == 64
    assert run(hash_cmd(ggufscope, "--threads", "-1", STORIES)).returncode == 64
    assert run(hash_cmd(ggufscope, "--md5", STORIES)).returncode == 64
