"""How sequences become batches: which pairs go together (:class:`Batching`, the samplers), the
batch the model reads (:class:`RewardBatch`) and its layouts (:class:`Layout`: padded, packed,
shared prompt), the training collator, and the batches that score sequences once each across
ranks (:class:`SequenceBatches`)."""

from lightning_critrm.layout.batch import PaddingSide, RewardBatch, Segment
from lightning_critrm.layout.collate import PairCollator
from lightning_critrm.layout.options import Batching, Layout
from lightning_critrm.layout.sequences import SequenceBatches

__all__ = ["Batching", "Layout", "PaddingSide", "PairCollator", "RewardBatch", "Segment", "SequenceBatches"]
