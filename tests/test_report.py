"""The HTML report is valid, self-contained (every picture a PNG data URI), and names every method;
``explain --method`` with several methods writes a montage. (tools/check_report_browser.py opens a
report in real Chromium; the suite does not depend on a browser.)"""

import base64
import io
from html.parser import HTMLParser

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from PIL import Image

import onnxai
from onnxai import metrics, render
from onnxai.cli import main
from onnxai.methods import METHODS
from onnxai.report import Report
import onnx_models

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Checker(HTMLParser):
    """Collects images, links and scripts, and checks that every non-void element is closed in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.images, self.methods, self.external, self.text = [], [], [], [], [], []
        self.doctype = False

    def handle_decl(self, decl):
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
            if not a.get("alt"):
                self.errors.append("img without alt")
        if tag in ("script", "link", "iframe") or (tag == "a" and "href" in a):
            self.external.append(tag)
        if "data-method" in a:
            self.methods.append(a["data-method"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _check_html(text: str) -> _Checker:
    c = _Checker()
    c.feed(text)
    c.close()
    assert c.doctype, "no <!DOCTYPE html>"
    assert not c.errors, c.errors[:5]
    assert not c.stack, f"unclosed elements {c.stack}"
    assert not c.external, f"the report links outside itself: {c.external}"
    assert c.images, "no pictures"
    for src in c.images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        assert png.format == "PNG"
        png.load()
        assert png.width > 8 and png.height > 8
    return c


def _files(tmp_path):
    m, _ = onnx_models.region_net(size=32, region=(8, 20, 8, 20))
    onnx.save(m, tmp_path / "region.onnx")
    path = tmp_path / "pic.png"
    Image.fromarray(onnx_models.region_picture(32, (8, 20, 8, 20))).save(path)
    opts = ["--providers", "cpu", "--resize", "32", "--size", "32", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]
    return str(tmp_path / "region.onnx"), str(path), opts


def test_explain_report_is_valid_self_contained_and_names_each_method(tmp_path):
    model, pic, opts = _files(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["explain", model, pic, "--method", "lime,occlusion", "--target", "top2",
                                  "--samples", "64", "--window", "4", "--report", "--metrics", "--out", str(out), *opts])
    assert r.exit_code == 0, r.output
    text = (out / "report.html").read_text(encoding="utf-8")
    c = _check_html(text)
    assert sorted(set(c.methods)) == ["lime", "occlusion"]
    assert c.methods.count("lime") == 2  # one overlay per class
    body = " ".join(c.text)
    for word in ("top-2 predictions", "deletion AUC", "random", "lime", "occlusion", "parameters"):
        assert word in body, word
    assert len(c.images) == 1 + 4  # the input and 2 methods x 2 classes
    assert "deletion AUC" in r.output and "random" in r.output
    montage = Image.open(out / "pic_montage.png")
    single = Image.open(out / "pic_lime_class_1.png")
    assert montage.width >= 2 * single.width and montage.height >= 2 * single.height  # 2 methods x 2 classes


def test_method_all_runs_every_registered_method(tmp_path):
    _, pic, opts = _files(tmp_path)
    m, _ = onnx_models.conv_net(size=32, channels=8, classes=3, seed=0)  # has a linear head on pooling: CAM runs too
    onnx.save(m, tmp_path / "conv.onnx")
    out = tmp_path / "all"
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "conv.onnx"), pic, "--method", "all", "--samples", "32",
                                  "--out", str(out), "--report", "--no-progress", *opts])
    assert r.exit_code == 0, r.output
    c = _check_html((out / "report.html").read_text(encoding="utf-8"))
    pictures = [n for n, cls in METHODS.items() if cls.inputs != "tables"]
    assert set(c.methods) == set(pictures)
    assert Image.open(out / "pic_montage.png").width > len(pictures) * 32


def test_method_all_skips_what_cannot_run_on_the_model(tmp_path):
    model, pic, opts = _files(tmp_path)  # region_net: no linear head on pooling, so no CAM
    r = CliRunner().invoke(main, ["explain", model, pic, "--method", "all", "--samples", "32",
                                  "--out", str(tmp_path / "o"), "--no-progress", *opts])
    assert r.exit_code == 0, r.output
    assert "skipped cam" in r.output and "occlusion" in r.output


def test_report_api_with_evaluation_and_existing_file(tmp_path):
    m, mask = onnx_models.region_net()
    pre = onnxai.Preprocess(resize=None, crop=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    model = onnxai.load(m, preprocess=pre, providers="cpu")
    pics = [onnx_models.region_picture(seed=s) for s in range(2)]
    ev = metrics.evaluate(model, pics, {"occlusion": onnxai.Occlusion(window=4, stride=2)}, step=32)
    from onnxai.cli import evaluation_curves

    rep = Report("a <b>title</b> & more", model=model, params={"step": 32})
    rep.add_evaluation(ev, evaluation_curves(ev))
    prep = metrics.prepare(model, pics[0])
    rep.add_picture("first <picture>", prep.crop, model.top(prep.probs, 2),
                    [e for e in ev.explanations if e.source == "<array 0>"],
                    {(s.method, s.target): s for s in ev.scores if s.image == "<array 0>"})
    path = rep.save(tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    c = _check_html(text)
    assert "a &lt;b&gt;title&lt;/b&gt; &amp; more" in text  # names are escaped
    assert set(c.methods) == {"occlusion", "random"}
    path.write_text("old")
    with pytest.raises(onnxai.InputError, match="exists"):  # the command line's default
        rep.save(path, force=False)
    assert path.read_text() == "old"
    assert rep.save(path).read_text(encoding="utf-8") == text  # the library's default: overwrite, like numpy.save


def test_line_plot_draws_every_curve():
    x = np.linspace(0, 1, 20)
    img = render.line_plot({"a": (x, x), "b": (x, 1 - x)}, "t", "x", "y", size=(300, 200))
    arr = np.asarray(img)
    assert img.size == (300, 200)
    for colour in render.PLOT_COLOURS[:2]:
        assert np.any(np.all(arr == colour, axis=-1)), colour
