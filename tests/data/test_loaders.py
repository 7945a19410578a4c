from lightning_critrm.data.loaders import IndexedDataset, ResumableDataLoader
from lightning_critrm.layout.samplers import EpochShuffleSampler, LengthGroupedBatchSampler


def loader():
    sampler = LengthGroupedBatchSampler(EpochShuffleSampler(8, seed=3), batch_size=2, drop_last=False,
                                        lengths=[1] * 8, window_batches=1)
    rows = [{"text": str(i)} for i in range(8)]
    return ResumableDataLoader(IndexedDataset(rows), batch_sampler=sampler, collate_fn=lambda b: b)


def test_a_resumed_loader_continues_with_the_next_unseen_batch_of_the_same_epoch():
    first = loader()
    batches = [[item["index"] for item in batch] for batch in first]  # epoch 0
    first.batches_consumed = 3  # as the data module counts trained batches
    state = first.state_dict()
    assert state == {"batches_consumed": 3, "epoch": 0}
    resumed = loader()
    resumed.load_state_dict(state)
    assert [[item["index"] for item in batch] for batch in resumed] == batches[3:]
    assert [[item["index"] for item in batch] for batch in resumed] != batches  # then epoch 1, reshuffled
