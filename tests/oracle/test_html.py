"""`ggufscope compare --html`: the page parses (Python's html.parser for the
HTML, xml.etree for every inline SVG), names the verdict and the first
divergent op, reaches nothing on the network, and keeps the exit codes; where
a Chromium is installed, it renders to a non-trivial screenshot."""
from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from conftest import SHARED
from test_trace import _read, _run, _trace, write_trace

STORIES = os.path.join(SHARED, "models", "stories260K.gguf")
SVG_NS = "http://www.w3.org/2000/svg"
VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "wbr", "source", "track", "embed"}


class _Checker(HTMLParser):
    """Collects tags; checks that non-void HTML elements nest and close."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _check_page(path) -> tuple[str, str]:
    """(raw html, visible text); asserts well-formedness and self-containment."""
    html = open(path, encoding="utf-8").read()
    assert html.startswith("<!DOCTYPE html>")
    p = _Checker()
    p.feed(html)
    p.close()
    assert not p.errors, p.errors[:5]
    assert not p.stack, f"unclosed: {p.stack}"
    names = [t for t, _ in p.tags]
    assert "script" not in names and "link" not in names and "img" not in names and "iframe" not in names
    for _, attrs in p.tags:
        for k, v in attrs.items():
            assert not k.startswith("on"), k  # no event handlers
            if k in ("href", "src"):
                assert v is not None and v.startswith("#"), (k, v)
    # Every SVG block is XML.
    svgs = []
    pos = html.find("<svg")
    while pos != -1:
        end = html.index("</svg>", pos) + len("</svg>")
        root = ET.fromstring(html[pos:end])
        assert root.tag == f"{{{SVG_NS}}}svg"
        svgs.append(root)
        pos = html.find("<svg", end)
    assert len(svgs) == 2, "the error plot and the range plot"
    # No URL but the SVG namespace.
    rest = html.replace(f'xmlns="{SVG_NS}"', "")
    assert "http://" not in rest and "https://" not in rest
    return html, "".join(p.text)


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _screenshot(html_path, png_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH: the HTML parsed, the screenshot "
                    "was not taken")
    subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={png_path}",
                    "--window-size=1200,1600", f"file://{os.path.abspath(html_path)}"],
                   capture_output=True, timeout=120)
    assert os.path.exists(png_path), "the browser wrote no screenshot"
    data = open(png_path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000, f"screenshot of {len(data)} bytes: a blank page?"


def test_html_consistent_engines(ggufscope, tmp_path):
    out = tmp_path / "out.html"
    p = _run([ggufscope, "compare", STORIES, "--a", "cpu", "--b", "cpu-f64", "-p", "Once upon a time",
              "-t", "2", "--html", str(out)], check=False)
    assert p.returncode == 0, p.stderr
    html, text = _check_page(out)
    assert "Consistent" in text
    assert "first divergent:" not in text and "Diverges" not in text
    assert "l_out-4" in text and "result_output" in text
    assert 'class="tol"' in html  # the tolerance line


def test_html_diverging_traces(ggufscope, tmp_path):
    good = _trace(ggufscope, STORIES, tmp_path / "good.gguf", "-p", "Once upon a time, there was a little girl.")
    meta, tensors = _read(good)
    rng = np.random.default_rng(0)
    bad, downstream = dict(tensors), False
    for name in tensors:  # Kcur-1 off by 5%, and what is computed from it
        downstream = downstream or name == "kqv_out-1"
        if name == "Kcur-1" or downstream:
            x = tensors[name]
            bad[name] = x + 0.05 * np.sqrt((x.astype(np.float64) ** 2).mean()) * rng.standard_normal(x.shape)
    # A hostile point name, as an untrusted trace could carry (an op outside the graph table).
    hostile = "<script>alert(1)</script>-0"
    with_hostile = {}
    for name, x in bad.items():
        with_hostile[name] = x
        if name == "l_out-0":
            with_hostile[hostile] = x
    a_points = {}
    for name, x in tensors.items():
        a_points[name] = x
        if name == "l_out-0":
            a_points[hostile] = x
    a_path, b_path = tmp_path / "a.gguf", tmp_path / "b.gguf"
    write_trace(str(a_path), a_points, meta["trace.tokens"], backend="reference")
    write_trace(str(b_path), with_hostile, meta["trace.tokens"])
    out = tmp_path / "div.html"
    p = _run([ggufscope, "compare", str(a_path), str(b_path), "--html", str(out)], check=False)
    assert p.returncode == 1, p.stderr  # unchanged: diverges
    html, text = _check_page(out)
    assert "Diverges" in text and "first divergent op Kcur in layer 1" in text
    assert "first divergent: Kcur-1" in text  # the plot's mark
    assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;-0" in html
    assert hostile in text  # shown, as text
    _screenshot(out, tmp_path / "shot.png")


def test_html_write_error_exits_74(ggufscope, tmp_path):
    a = _trace(ggufscope, STORIES, tmp_path / "a.gguf", "--tokens", "1,2,3")
    p = _run([ggufscope, "compare", str(a), str(a), "--html", str(tmp_path / "no" / "such" / "dir.html")],
             check=False)
    assert p.returncode == 74, (p.returncode, p.stderr)
    assert "cannot write the HTML report" in p.stderr
