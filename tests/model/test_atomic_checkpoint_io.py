import pytest
import torch

from lightning_critrm.model import atomic_checkpoint_io
from lightning_critrm.model.atomic_checkpoint_io import AtomicCheckpointIO


def test_a_save_that_dies_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def dies_midway(obj, fh):
        fh.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(atomic_checkpoint_io.torch, "save", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(atomic_checkpoint_io.torch, "save", real_save)
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left
    io.save_checkpoint({"global_step": 3, "w": torch.zeros(3)}, path)
    assert torch.equal(io.load_checkpoint(path, weights_only=True)["w"], torch.zeros(3))


def test_the_command_line_trainer_writes_checkpoints_atomically(tmp_path, pairs_file, tiny_decoder_dir):
    from lightning_critrm.cli import main
    from tests.test_cli import tiny_config

    cli = main(["--config", str(tiny_config(tmp_path, tiny_decoder_dir, pairs_file))], run=False)
    assert type(cli.trainer.strategy.checkpoint_io) is AtomicCheckpointIO
