"""How sequences become batches: the batch the model reads (:class:`RewardBatch`), its layouts
(:class:`Layout`: padded, packed, shared prompt), the training collator and samplers, and the
batches that score sequences once each across ranks (:class:`SequenceBatches`)."""

from lightning_critrm.layout.batch import PaddingSide, RewardBatch, Segment
from lightning_critrm.layout.collate import PairCollator
from lightning_critrm.layout.options import Layout
from lightning_critrm.layout.sequences import SequenceBatches

__all__ = ["Layout", "PaddingSide", "PairCollator", "RewardBatch", "Segment", "SequenceBatches"]
