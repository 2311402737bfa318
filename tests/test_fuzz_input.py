"""Property-based fuzzing of blueprints and ``--set`` overrides: every input either builds (on the meta
device) or raises spmkit's own error type, never anything else, and always quickly."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spmkit.blueprint import load_blueprint
from spmkit.builder import build_model
from spmkit.errors import SpmkitError

BLUEPRINTS = ["tiny_pvt", "tiny_swin", "tiny_pvt_spm", "tiny_lit", "tiny_glnet", "tiny_groupmixformer"]
KEYS = [
    "stages.0.depth", "stages.1.dim", "stages.2.heads", "stages.3.mlp_ratio", "stages.0.cls_token", "stages.9.dim",
    "stages.-1.depth", "stages.0", "stages", "stages.x", "mlp_ratio", "heads", "img_size", "in_chans", "norm.eps",
    "norm.type", "head.num_classes", "head.pool", "head.drop", "stem.patch_size", "stem.type", "stem.norm_eps",
    "merging.type", "merging.kernel_size", "merging.stride", "mixer", "mixer.type", "mixer.0.window_size",
    "mixer.sr_ratio", "window_size", "sr_ratio", "drop_path_rate", "out_indices", "name", "extends", "act",
    "conv_init", "pos_embed", "pos_embed.type", "reference.x", "nosuch", "a.b.c.d.e", "block.type",
    "stages.1.merging", "final_norm",
]
NAMES = ["sra", "window", "global", "spm", "conv", "patch_merging", "dtm", "msa_only", "gle_only", "layernorm",
         "batchnorm", "patch_embed", "conv_stem", "classifier", "transformer", "absolute", "avg", "token", "gelu"]
SPECIAL = ["1e9", ".inf", "-.inf", ".nan", "[", "{a: 1}", "&a [*a]", "[*undefined]", "!!python/object:os.system",
           "~", "''", "true", "0x10", "1_000", "9" * 5000, "[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]",
           "{type: sra, sr_ratio: true}", "{type: window, window_size: four}", "[1, 2, 3]", "-0"]


def _render(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)  # 'inf' / 'nan' are numeric text to a float field
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


values = st.one_of(
    st.integers(-3, 300),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.lists(st.integers(-2, 9), max_size=4),
    st.sampled_from(NAMES),
    st.sampled_from(SPECIAL),
)
overrides = st.lists(st.tuples(st.sampled_from(KEYS), values).map(lambda kv: f"{kv[0]}={_render(kv[1])}"),
                     min_size=1, max_size=4)

FUZZ = settings(max_examples=200, deadline=timedelta(seconds=10), derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _builds_or_refuses(src, sets: list[str]) -> None:
    t0 = time.perf_counter()
    try:
        build_model(load_blueprint(src, sets), device="meta")
    except SpmkitError:
        pass
    assert time.perf_counter() - t0 < 10


@FUZZ
@given(name=st.sampled_from(BLUEPRINTS), sets=overrides)
def test_overrides_build_or_raise_spmkit_error(name: str, sets: list[str]) -> None:
    _builds_or_refuses(name, sets)


documents = st.recursive(
    st.one_of(st.integers(-2, 100), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
              st.text(max_size=8), st.sampled_from(NAMES)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["type", "depth", "dim", "heads", "eps", "x"]),
                                               children, max_size=4)),
    max_leaves=12,
)


@FUZZ
@given(name=st.sampled_from(BLUEPRINTS), changes=st.dictionaries(
    st.sampled_from(["stem", "stages", "mixer", "merging", "norm", "head", "img_size", "heads", "block", "act",
                     "pos_embed", "extends", "out_indices", "mlp_ratio", "reference", "window_size", "in_chans"]),
    documents, min_size=1, max_size=3))
def test_blueprint_files_build_or_raise_spmkit_error(tmp_path_factory, name: str, changes: dict) -> None:
    root = Path(__file__).resolve().parent.parent / "blueprints" / "tiny"
    data = yaml.safe_load((root / f"{name}.yaml").read_text())
    data.update(changes)
    path = tmp_path_factory.mktemp("fuzz") / "bp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    _builds_or_refuses(path, [])
