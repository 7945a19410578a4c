import pytest
import torch

from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.errors import InputError
from lightning_critrm.trainer import CritiqueRMTrainer, fill_all_critiques, load_checkpoint_state


def test_critique_refuses_a_config_with_nothing_to_critique(tmp_path, pairs_file, tiny_decoder_dir):
    dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="columns",
                              cache_dir=str(tmp_path))
    assert fill_all_critiques(dm, [], require_cached=False) == []
    trainer = CritiqueRMTrainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    with pytest.raises(InputError, match="nothing to critique: data.critiques is not 'generate'"):
        trainer.critique(model=None, datamodule=dm)


def test_a_checkpoint_file_loads_on_the_cpu_with_plain_values_only(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "global_step": 3}, path)
    state = load_checkpoint_state(path)
    assert state["global_step"] == 3 and torch.equal(state["state_dict"]["w"], torch.ones(2))
    torch.save({"object": object()}, tmp_path / "unsafe.ckpt")
    with pytest.raises(Exception, match="Weights only load failed"):
        load_checkpoint_state(tmp_path / "unsafe.ckpt")
