"""The options that set explanation-method parameters (shared by explain, evaluate and sanity), and
how they reach the methods.

Each option sets ONE canonical parameter (``--samples`` -> ``num_samples``) and goes to every selected
method whose constructor takes a parameter of that name: the signatures of the classes in
``methods.METHODS`` decide, so a method declares its options by its parameters, and --help lists the
methods (with their defaults) from the same signatures. An option the user gave that none of the
selected methods takes is an error naming the methods that do. ``--param METHOD.KEY=VALUE`` sets any
parameter of one method and wins over these options.
"""

from __future__ import annotations

import inspect
import json

import click

from ..errors import InputError
from ..methods import takes
from .common import note

FILLS = "mean, segment-mean, blur, black, zero, a grey value or R,G,B"


class PixelPair(click.ParamType):
    """N or HxW (also H,W) in pixels, checked when the command line is read (a usage error, before the
    model loads); the text is passed on as given."""

    name = "N|HxW"

    def convert(self, value, param, ctx):
        from ..kernels._checks import pair

        try:
            pair(value, param.name if param is not None else "value")
        except InputError as e:
            self.fail(str(e), param, ctx)
        return value

class _OrAuto(click.ParamType):
    """A value or the word "auto" (any case); ``parse`` reads the value from the text, or None when bad."""

    kinds: tuple = ()
    wanted = ""

    def parse(self, text: str):
        raise NotImplementedError

    def convert(self, value, param, ctx):
        if isinstance(value, self.kinds) or value == "auto":
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        parsed = self.parse(text)
        if parsed is None:
            self.fail(f"{value!r} is neither {self.wanted} nor 'auto'", param, ctx)
        return parsed


class Samples(_OrAuto):
    """--samples: a whole number >= 1, or "auto" (stop when the standard errors settle)."""

    name, kinds, wanted = "N|auto", (int,), "a whole number >= 1"

    def parse(self, text):
        return int(text) if text.isdigit() and int(text) >= 1 else None


class Number(click.ParamType):
    """A float with a one-line message when it is not one (the range is the method's to check)."""

    name = "X"

    def convert(self, value, param, ctx):
        try:
            return float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)


class Adjust(_OrAuto):
    """--adjust: a number in (0, 1] or "auto" (regression adjustment's coefficient; shap_adjust)."""

    name, kinds, wanted = "C|auto", (float,), "a number in (0, 1]"

    def parse(self, text):
        try:
            c = float(text)
        except ValueError:
            return None
        return c if 0 < c <= 1 else None


# (option, canonical parameter, click settings); the option's value is the parameter's value.
OPTIONS = [
    ("--samples", "num_samples", dict(type=Samples(), help="Perturbed inputs to score (LIME samples, Kernel SHAP coalitions, RISE masks; tables: Kernel SHAP's default is shap's 2M+2048), or 'auto': score until the map settles (see --tolerance), at most --max-samples.")),
    ("--tolerance", "tolerance", dict(type=Number(), help="--samples auto: pictures stop when the map's predicted rank correlation with its limit (from quarters and halves of the samples: Spearman-Brown with the exponent the quarters show) reaches 1 - this (default 0.05); tables when every standard error is below this share of the largest |value| (default 0.1).")),
    ("--max-samples", "max_samples", dict(type=int, help="--samples auto: the most samples to score (permutation-shap: permutations).")),
    ("--features", "num_features", dict(type=click.IntRange(1), help="Number of superpixels / grid cells.")),
    ("--keep-probability", "keep_probability", dict(type=click.FloatRange(0, 1, min_open=True), help="Chance that a feature / mask cell stays visible in a sample.")),
    ("--score", "score", dict(type=click.Choice(["auto", "probabilities", "logits"]), help="What the method explains: the class probability or its logit (for a model that outputs only probabilities, e.g. scikit-learn's, the class's log-odds against the rest); auto (occlusion, RISE, LIME, Kernel SHAP) takes the logits when the target's probability on the input is above 0.99 (a saturated softmax is flat) and says so.")),
    ("--segmentation", "segmentation", dict(type=click.Choice(["slic", "quickshift", "felzenszwalb", "grid"]), help="How features are made.")),
    ("--surrogate", "surrogate", dict(type=click.Choice(["tree", "linear", "ridge"]), help="LIME: regression tree (MATLAB default), lasso, or ridge (lime package).")),
    ("--kernel-width", "kernel_width", dict(type=float, help="LIME: locality kernel width.")),
    ("--upsample", "upsample", dict(type=click.Choice(["auto", "nearest", "bicubic", "none"]), help="LIME: output upsampling (auto: bicubic for grid, nearest for superpixels).")),
    ("--fill", "fill", dict(help=f"What hidden pixels show: {FILLS}.")),
    ("--window", "window", dict(type=PixelPair(), help="Occlusion: window size in pixels, N or HxW (default input/7).")),
    ("--stride", "stride", dict(type=PixelPair(), help="Occlusion: stride in pixels, N or HxW (default window/2).")),
    ("--clip-mode", "clip_mode", dict(type=click.Choice(["inside", "clip"]), help="Occlusion: windows inside the picture (captum) or clipped at borders (MATLAB).")),
    ("--seed", "seed", dict(type=int, help="Seed of the explanation method's random draws (same seed, same map).")),
    ("--layer", "layer", dict(help="CAM methods: the activation to read, a name from `onnxai inspect MODEL --layers` (auto: the features the linear head pools, else the last map over the picture's grid).")),
    ("--channel-axis", "channel_axis", dict(type=click.Choice(["1", "3"]), callback=lambda c, p, v: None if v is None else int(v), help="CAM methods: where the layer's channels lie, 1 (NCHW) or 3 (NHWC), when the graph does not tell.")),
    ("--prefix-tokens", "prefix_tokens", dict(type=click.IntRange(0), help="CAM methods on transformer tokens: how many tokens come before the patch grid (class, distillation).")),
    ("--gradient", "gradient", dict(type=click.Choice(["auto", "exact", "elementwise", "central"]), help="Grad-CAM: how the gradient is found without autograd.")),
    ("--preset", "preset", dict(type=click.Choice(["authors", "paper", "pytorch-grad-cam"]), help="Score-CAM: channel weights of the authors' code, the paper, or pytorch-grad-cam.")),
    ("--cells", "cells", dict(type=click.IntRange(1), help="RISE: grid cells per side of a mask.")),
    ("--background-size", "background_size", dict(type=click.IntRange(1), help="Kernel SHAP on tables: how many rows the background is summarised to.")),
    ("--summarise", "summarise", dict(type=click.Choice(["kmeans", "sample", "all"]), help="Kernel SHAP on tables: how the background is summarised (k-means centres weighted by cluster size, a random sample, or every row).")),
    ("--sampling", "sampling", dict(type=click.Choice(["stratified", "shap", "leverage", "paired", "independent", "sobol"]), help="The sample design. Kernel SHAP: stratified (default: budget split over sizes by kernel weight), shap (the shap package's random draw of sizes) or leverage (budget split evenly over sizes: Leverage SHAP, Musco & Witter 2025). LIME: paired (default for ridge/lasso: each mask and its complement) or independent (lime's draw; the tree's default). RISE: sobol (default: grids and shifts from a scrambled Sobol sequence) or independent.")),
    ("--adjust", "adjust", dict(type=Adjust(), help="Kernel SHAP on pictures: regression adjustment (with --samples auto the stop is decided on the plain map and the final one is adjusted), a tree-ensemble surrogate of the scores as a control variate, with this coefficient in (0, 1] or 'auto' (chosen per class from the run's own variances, at least 0.5). The same Shapley values; on the shipped model's six measured pictures 0.5 cut the error 1.1-3.1x and auto 1.06-5.4x; about 1.5 s of fitting per class at 1000 samples.")),
    ("--mode", "mode", dict(type=click.Choice(["soft", "hard"]), help="NBDT: soft (a leaf's probability is the product of the decisions' softmaxes) or hard (greedy descent).")),
]
PARAM_OF = {opt: param for opt, param, _ in OPTIONS}
OPTION_OF = {param: opt for opt, param, _ in OPTIONS}

# Old spellings, hidden: option -> (keyword argument, the option that replaces it).
DEPRECATED = {"--nsamples": ("deprecated_nsamples", "--samples"), "--masks": ("deprecated_masks", "--samples")}


def method_classes() -> dict:
    from ..methods import METHODS

    return METHODS


def takers(param: str, classes: dict | None = None) -> list[str]:
    classes = method_classes() if classes is None else classes
    return [n for n, c in classes.items() if takes(c, param)]


class MethodOption(click.Option):
    """An option that sets the method parameter ``method_param``; its help ends with the methods that
    take it and their defaults, read from their signatures when --help is shown."""

    def __init__(self, *args, method_param: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.method_param = method_param

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is None:
            return record
        parts = []
        for name, cls in method_classes().items():
            p = inspect.signature(cls).parameters.get(self.method_param)
            if p is not None:
                default = p.default
                shown = "" if default in (None, inspect.Parameter.empty) or callable(default) else f"={default}"
                parts.append(f"{name}{shown}")
        return record[0], f"{record[1]}  [{', '.join(parts) or 'no method takes it yet'}]"


def method_options(fn):
    """The method-parameter options (and their hidden deprecated spellings) on a command."""
    for opt, param, settings in reversed(OPTIONS):
        fn = click.option(opt, param, cls=MethodOption, method_param=param, default=None, **settings)(fn)
    for opt, (dest, new) in DEPRECATED.items():
        fn = click.option(opt, dest, type=click.IntRange(1), default=None, hidden=True,
                          help=f"Deprecated spelling of {new}.")(fn)
    return fn


def pop_settings(kwargs: dict) -> dict:
    """Pop the method options out of a command's keyword arguments -> {parameter: (option, value)},
    only those given. A deprecated spelling says so and counts as the option that replaced it."""
    settings = {param: (opt, kwargs.pop(param)) for opt, param, _ in OPTIONS}
    settings = {k: v for k, v in settings.items() if v[1] is not None}
    for old, (dest, new) in DEPRECATED.items():
        value = kwargs.pop(dest, None)
        if value is None:
            continue
        note(f"{old} is deprecated; use {new}")
        param = PARAM_OF[new]
        if param in settings and settings[param][1] != value:
            raise InputError(f"{old} {value} and {settings[param][0]} {settings[param][1]} disagree; give only {new} "
                             f"(or set one method's value with --param METHOD.{param}=N)")
        settings.setdefault(param, (old, value))
    return settings


def route(names: list[str], settings: dict, classes: dict) -> dict[str, dict]:
    """{parameter: (option, value)} -> {method: {parameter: value}}, each parameter to every method in
    ``names`` that takes it; an option none of them takes is an InputError naming the methods that do."""
    per = {n: {} for n in names}
    for param, (opt, value) in settings.items():
        to = [n for n in names if takes(classes[n], param)]
        if not to:
            others = takers(param, classes)
            where = f"; it is for {', '.join(others)}" if others else ""
            raise InputError(f"{opt} ({param}) is not a parameter of {_either(names)}{where} "
                             "(add such a method to --method, or drop the option)")
        for n in to:
            per[n][param] = value
    return per


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def parse_params(items) -> dict:
    """--param METHOD.KEY=VALUE (repeatable) -> {method: {key: value}}; values are JSON when they parse."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise InputError(f"--param takes METHOD.KEY=VALUE (e.g. lime.num_samples=500), got {item!r}")
        try:
            v = json.loads(value)
        except json.JSONDecodeError:
            v = value
        out.setdefault(method.strip().lower().replace("_", "-"), {})[name.strip().replace("-", "_")] = v
    return out


def params_for(names: list[str], items) -> dict:
    """parse_params, and each METHOD named must be one of ``names``."""
    by_method = parse_params(items)
    unknown = set(by_method) - set(names)
    if unknown:
        raise InputError(f"--param names {sorted(unknown)} but the methods are {names}")
    return by_method


def param_option(fn):
    return click.option("--param", "params", multiple=True,
                        help="Any method parameter, METHOD.KEY=VALUE (repeatable), e.g. lime.num_samples=500; "
                             "wins over the options above for that method.")(fn)


def build_methods(names: list[str], settings: dict, params: list[str], no_progress: bool) -> list[tuple]:
    """The method objects (name, method) for ``names``: the options routed by signature, then --param."""
    from ..methods import make_method

    classes = method_classes()
    for n in names:
        if n not in classes:
            make_method(n)  # raises the registry's "unknown method ... available: ..." error
    if settings.get("num_samples", (None, None))[1] == "auto" and not takers("num_samples", {n: classes[n] for n in names}):
        raise InputError(f"--samples auto is for sampled methods ({_either(takers('tolerance', classes))}); "
                         f"{_either(names)} {'is' if len(names) == 1 else 'are'} deterministic: drop --samples")
    by_method = params_for(names, params)
    per = route(names, settings, classes)
    objs = []
    for n in names:
        p = per[n]
        if no_progress and takes(classes[n], "progress"):
            p["progress"] = False
        p.update(by_method.get(n, {}))
        objs.append((n, make_method(n, **p)))
    return objs
