import pytest
import torch

from lightning_critrm.errors import MissingInputError
from lightning_critrm.model.checkpoint_paths import resolve_checkpoint

CALLBACK = "ModelCheckpoint{'monitor': 'val/acc', 'mode': 'max'}"


def save_last(folder, best_model_path):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(2)},
                "callbacks": {CALLBACK: {"best_model_path": best_model_path}}},
               folder / "last.ckpt")


def test_last_and_best_are_found_in_the_checkpoint_folder_even_after_it_moved(tmp_path):
    folder = tmp_path / "moved" / "checkpoints"
    save_last(folder, str(tmp_path / "original" / "checkpoints" / "step4-acc1.000.ckpt"))
    (folder / "step4-acc1.000.ckpt").write_bytes(b"")
    assert resolve_checkpoint("last", folder) == folder / "last.ckpt"
    assert resolve_checkpoint("best", folder) == folder / "step4-acc1.000.ckpt"
    assert resolve_checkpoint(str(folder / "last.ckpt"), None) == folder / "last.ckpt"


def test_a_sharded_save_records_its_best_in_its_metadata_file(tmp_path):
    folder = tmp_path / "checkpoints"
    best = folder / "step2-acc0.500.ckpt"
    best.mkdir(parents=True)
    (folder / "last.ckpt").mkdir()
    torch.save({"callbacks": {CALLBACK: {"best_model_path": str(best)}}}, folder / "last.ckpt" / "meta.pt")
    assert resolve_checkpoint("best", folder) == best


@pytest.mark.parametrize("setup, ckpt_path, message", [
    (lambda folder: None, "last", "--ckpt_path last: no .*last.ckpt; train first"),
    (lambda folder: None, "best", "--ckpt_path best: no .*last.ckpt; train first"),
    (lambda folder: save_last(folder, ""), "best", "records no best checkpoint.*use --ckpt_path last"),
    (lambda folder: save_last(folder, "/gone/step1.ckpt"), "best", "names /gone/step1.ckpt as the best "
                                                                   "checkpoint, which is gone"),
    (lambda folder: None, "nowhere.ckpt", "--ckpt_path nowhere.ckpt: no such checkpoint"),
])
def test_a_missing_checkpoint_is_named_instead_of_scoring_an_untrained_model(tmp_path, setup, ckpt_path,
                                                                             message):
    folder = tmp_path / "checkpoints"
    setup(folder)
    with pytest.raises(MissingInputError, match=message):
        resolve_checkpoint(ckpt_path, folder)
