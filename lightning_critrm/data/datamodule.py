"""LightningDataModule for critique-augmented preference pairs."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Literal, Optional

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from lightning_critrm.backbones import cache_root, load_tokenizer, pad_token_id, resolve_backbone
from lightning_critrm.critique import CriticConfig, CritiqueStore, CritiqueSummary, pair_items
from lightning_critrm.data import sources
from lightning_critrm.data.completion_encoder import CompletionEncoder
from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.data.loaders import IndexedDataset, ResumableDataLoader
from lightning_critrm.data.report import report_data
from lightning_critrm.data.splits import rows_read
from lightning_critrm.data.tokenized_cache import (
    TokenizedStats,
    build_or_load,
    cache_key,
    critique_contents,
    tokenizer_identity,
)
from lightning_critrm.errors import InputError, NotReadyError
from lightning_critrm.layout import Batching, Layout, PairCollator
from lightning_critrm.prompts import CritiqueFormat
from lightning_critrm.records import ColumnMap

log = logging.getLogger(__name__)

CritiqueMode = Literal["columns", "generate", "none"]


class PreferenceDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: str = "builtin:arithmetic",
        split: str = "train",
        val_source: Optional[str] = None,
        val_split: str = "test",
        test_source: Optional[str] = None,
        test_split: str = "test",
        columns: Optional[ColumnMap] = None,
        on_bad_row: Literal["error", "skip"] = "error",
        critiques: CritiqueMode = "columns",
        critic: Optional[CriticConfig] = None,
        critique_format: CritiqueFormat = CritiqueFormat(),
        backbone: str = "smollm2-135m-instruct",
        max_length: int = 1024,
        val_fraction: float = 0.1,
        max_train_pairs: Optional[int] = None,
        max_val_pairs: Optional[int] = None,
        seed: int = 0,
        sample_seed: Optional[int] = None,
        batching: Batching = Batching(),
        layout: Layout = Layout(),
        cache_dir: Optional[str] = None,
        critique_targets: bool = False,
    ):
        """Preference pairs (prompt, chosen, rejected) with one critique per completion.

        Args:
            source: Training pairs: a local ``.jsonl``/``.json``/``.parquet`` file, glob or folder;
                ``builtin:arithmetic`` (the quickstart set, generated offline); or a dataset name on
                the Hugging Face hub (``name`` or ``name:config``).
            split: Split of a hub ``source``.
            val_source: Validation pairs from another source. ``None``: hold out ``val_fraction``
                of the prompts of ``source``.
            val_split: Split of a hub ``val_source``.
            test_source: Pairs the ``test`` subcommand scores. ``None``: the validation pairs.
            test_split: Split of a hub ``test_source``.
            columns: Which source columns hold prompt, chosen, rejected, the critiques and an
                optional margin. Conversational rows (lists of ``{"role", "content"}``) work too.
            on_bad_row: ``error``: a row that cannot be read stops the run, naming its file, line and
                field; ``skip``: it is left out and reported by line (the first 20 in the log, every
                one in TensorBoard text ``data/<source>_skipped_rows``).
            critiques: ``columns``: read one critique per completion from the critique columns;
                ``generate``: have ``critic`` write one per completion (cached; missing ones are
                generated in ``prepare_data`` or by the ``critique`` subcommand); ``none``: train a
                plain reward model on the same data. Critiques follow the completion.
            critic: The critic for ``critiques: generate`` (default: SmolLM2-135M-Instruct through
                transformers, greedy).
            critique_format: The block that carries a critique (``template``, with exactly one
                ``{critique}``) and its name (``version``), which enters every cache key.
            backbone: Backbone whose tokenizer and chat template format the inputs. Linked from
                ``model.backbone`` by the CLI; set it only when using the module on its own.
            max_length: Tokens per sequence at most. Longer ones lose the start of the prompt, then
                the end of the critique, then the end of the completion; the final token stays.
            val_fraction: Share of distinct prompts held out for validation (split by prompt, not row).
            max_train_pairs: Train on a seeded subsample of this many pairs (data-efficiency runs).
            max_val_pairs: Validate on a seeded subsample of this many pairs.
            seed: Seed of the split, the subsamples, the built-in data and the shuffling.
            sample_seed: Seed of the training subsample and the training order alone (default:
                ``seed``). A data-efficiency study varies it and keeps ``seed``, so every run is
                tested on the same held-out prompts.
            batching: Which pairs go into a batch: ``batch_size`` (pairs), ``eval_batch_size``,
                ``max_tokens_per_batch`` (a token budget instead), ``group_by_length``,
                ``num_workers``.
            layout: How a batch's sequences share rows: ``padding_side``, ``packing`` (and its
                ``row_tokens``), ``shared_prompt``. Validation, test and RewardBench scoring lay
                rows out the same way (without packing).
            cache_dir: Where tokenized pairs are cached (default: ``$LIGHTNING_CRITRM_CACHE`` or
                ``~/.cache/lightning_critrm``).
            critique_targets: Batches also carry where each critique's tokens are, for a model that
                learns to write them. Linked from ``model.critique_lm_coef > 0`` by the CLI.
        """
        super().__init__()
        # Settings checked here, before any data is read or a critic starts.
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        for name, value in (("max_train_pairs", max_train_pairs), ("max_val_pairs", max_val_pairs),
                            ("max_length", max_length)):
            if value is not None and value < 1:
                raise InputError(f"data.{name} must be >= 1, got {value}")
        if critique_targets and critiques == "none":
            raise InputError("data.critique_targets (model.critique_lm_coef > 0) needs critiques to learn: "
                             "data.critiques: columns or generate")
        self.save_hyperparameters(ignore=["columns", "critic", "critique_format", "batching", "layout"])
        self.columns = _typed(ColumnMap, columns)
        self.batching, self.layout = _typed(Batching, batching), _typed(Layout, layout)
        critique_format = _typed(CritiqueFormat, critique_format)
        self.critic = (critic or CriticConfig()) if critiques == "generate" else critic
        if (self.critic is not None and self.critic.prompting == "continuation"
                and self.critic.template != critique_format.template):
            raise InputError(
                "data.critic.prompting: continuation writes the critique block the model reads, so "
                "data.critic.template must be data.critique_format.template")
        # Plain dicts, not dataclasses, so checkpoints load with weights_only=True. The critic
        # holds no secret: an API key is only ever named by its environment variable.
        self.hparams["columns"] = asdict(self.columns)
        self.hparams["critique_format"] = asdict(critique_format)
        self.hparams["batching"] = asdict(self.batching)
        self.hparams["layout"] = asdict(self.layout)
        self.hparams["critic"] = self.critic.as_dict() if self.critic is not None else None
        # The critique service of the training data, resolved once (it does no I/O until used).
        self.critique_store = (
            CritiqueStore.for_critic(self.critic, self.cache_dir) if critiques == "generate" else None
        )
        self.critique_format = critique_format if critiques != "none" else None
        self.train_dataset = self.val_dataset = self.test_dataset = None
        self.stats: dict[str, TokenizedStats] = {}
        self._tokenizer = None
        # (source, split, part) -> (tokenized pairs, stats): prepare_data builds them, setup in the same
        # process reuses them instead of reading the source and its critiques again.
        self._tokenized_sets: dict[tuple[str, str, Optional[str]], tuple] = {}
        self._parts_read: Optional[dict[str, tuple[sources.SourcePairs, list[int]]]] = None
        self._attends_per_sequence: Callable[[], Optional[bool]] = lambda: None

    def connect(self, attends_per_sequence: Callable[[], Optional[bool]]) -> None:
        """What the data needs to know of the model: whether a packed row costs only its own
        sequences' attention (asked when loaders are built, once the model is on its device;
        None: not known yet). The CLI connects its model; unconnected, a packed row holds a batch."""
        self._attends_per_sequence = attends_per_sequence

    # -- tokenizer and caching ----------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.hparams.backbone)
        return self._tokenizer

    @cached_property  # probes the tokenizer's special tokens once, not on every use
    def formatter(self) -> SequenceFormatter:
        return SequenceFormatter(self.tokenizer, self.hparams.max_length, self.critique_format)

    @property
    def cache_dir(self) -> Path:
        return Path(self.hparams.cache_dir) if self.hparams.cache_dir else cache_root()

    def _read(self, source: str, split: str, part: Optional[str] = None) -> sources.SourcePairs:
        """Pairs of ``source`` with critiques as configured, and the rows left out of them; with
        generated critiques, those of one ``part`` (:meth:`_parts`)."""
        mode = self.hparams.critiques
        if mode != "generate":
            return sources.read_pairs(source, self.columns, mode == "columns", split, self.hparams.seed,
                                      on_bad_row=self.hparams.on_bad_row)
        read, rows = self._parts()[part]
        # Rows left out of the source are reported with the first part read from it, not twice.
        first = next(name for name, (other, _) in self._parts().items() if other is read)
        read = replace(read, pairs=[read.pairs[i] for i in rows],
                       skipped=read.skipped if first == part else [],
                       identical=read.identical if first == part else [])
        attached = self.critique_store.attach(read.pairs)
        if attached.missing:
            raise NotReadyError(
                f"{attached.missing} pair(s) of {source} have no generated critique in "
                f"{self.critique_store.path}; run: python -m lightning_critrm critique --config <this config>"
            )
        return replace(read, pairs=attached.pairs, failed_critique=attached.dropped_failed)

    def _parts(self) -> dict[str, tuple[sources.SourcePairs, list[int]]]:
        """With generated critiques, the pairs the run reads, and no others (a critique costs a
        generation): part -> (the pairs of its source, read without critiques; its rows). ``train``:
        the training subsample; ``val``: the held-out prompts of ``source`` (or ``val_source``),
        subsampled; ``test``: every row of ``test_source``."""
        if self._parts_read is None:
            hp, reads = self.hparams, {}

            def read(source: str, split: str) -> sources.SourcePairs:
                if (source, split) not in reads:
                    reads[(source, split)] = sources.read_pairs(source, self.columns, False, split, hp.seed,
                                                                on_bad_row=hp.on_bad_row)
                return reads[(source, split)]

            main = read(hp.source, hp.split)
            held_out = read(hp.val_source, hp.val_split) if hp.val_source else main
            train, val = rows_read([p.prompt_key() for p in main.pairs],
                                   len(held_out.pairs) if hp.val_source else None, hp.val_fraction, hp.seed,
                                   hp.max_train_pairs, hp.max_val_pairs, self._sample_seed)
            parts = {"train": (main, train), "val": (held_out, val)}
            if hp.test_source:
                test = read(hp.test_source, hp.test_split)
                parts["test"] = (test, list(range(len(test.pairs))))
            self._parts_read = parts
        return self._parts_read

    def _tokenized(self, source: str, split: str, part: Optional[str] = None):
        if (source, split, part) not in self._tokenized_sets:
            self._tokenized_sets[(source, split, part)] = self._tokenize(source, split, part)
        return self._tokenized_sets[(source, split, part)]

    def _tokenize(self, source: str, split: str, part: Optional[str] = None):
        parts = {
            "source": sources.source_fingerprint(source, split),
            "columns": self.columns,
            "on_bad_row": self.hparams.on_bad_row,
            "critiques": self.hparams.critiques,
            "critique_format": self.critique_format,
            "max_length": self.hparams.max_length,
            "tokenizer": tokenizer_identity(self.tokenizer),
            # The built-in sets are generated from the seed; files and hub data are not.
            "seed": self.hparams.seed if source.startswith(sources.BUILTIN_PREFIX) else None,
        }
        if self.hparams.critique_targets:  # only then: keys of models that write no critiques stay
            parts["critique_targets"] = True
        loader = partial(self._read, source, split, part)
        if self.hparams.critiques == "generate":
            rows = self._parts()[part][1]
            parts["rows"] = hashlib.sha1(json.dumps(rows).encode()).hexdigest()
            # Generated critiques are read (a lookup per completion, fast next to tokenizing) and
            # their contents enter the key: another or a refilled critique store is another entry.
            loaded = loader()
            parts["critiques_read"] = critique_contents(loaded.pairs, loaded.failed_critique)
            loader = lambda: loaded  # noqa: E731
        return build_or_load(loader, self.formatter, cache_key(parts), self.cache_dir,
                             self.hparams.critique_targets)

    def _sources(self) -> list[tuple[str, str, Optional[str]]]:
        """(source, split, part): what is tokenized; with generated critiques, one entry per part."""
        hp = self.hparams
        val = (hp.val_source, hp.val_split) if hp.val_source else (hp.source, hp.split)
        found = [(hp.source, hp.split, "train"), (*val, "val")]
        if hp.test_source:
            found.append((hp.test_source, hp.test_split, "test"))
        if hp.critiques == "generate":  # (no held-out part where no prompt is held out)
            return [entry for entry in found if entry[2] == "train" or self._parts()[entry[2]][1]]
        # Otherwise each source is tokenized whole, once; setup splits and subsamples it.
        return list(dict.fromkeys((source, split, None) for source, split, _ in found))

    def generate_critiques(self, progress: bool = True,
                           require_cached: Optional[bool] = None) -> CritiqueSummary:
        """Fill the critique cache for every completion of every configured source.

        ``require_cached`` (default: the critic's ``cache.require_cached``) raises, naming the
        ``critique`` subcommand, instead of generating missing critiques; that subcommand passes
        ``False``.
        """
        if self.critique_store is None:
            raise InputError("critique generation needs data.critiques: generate (and a data.critic)")
        items = []
        for read, rows in self._parts().values():  # (rows left out are reported when tokenized)
            items.extend(pair_items([read.pairs[i] for i in rows]))
        summary = self.critique_store.fill(items, require_cached, progress)
        if rank_zero_only.rank == 0:
            log.info(str(summary))
        return summary

    @cached_property
    def completion_encoder(self) -> CompletionEncoder:
        """How to score other completions (RewardBench, ``score``) exactly as this data is formatted,
        with critiques from the same store. Reads no training data."""
        return CompletionEncoder(
            self.formatter,
            self.critique_store,
            reads_critiques=self.hparams.critiques != "none",
            pad_token_id=self.pad_token_id,
            layout=self.layout.for_scoring(),
            store_dir=self.cache_dir,
        )

    def prepare_data(self) -> None:
        # Rank 0 only: materialize a backbone alias, generate missing critiques and fill the
        # tokenized cache; the other ranks then read all three in setup().
        resolve_backbone(self.hparams.backbone)
        if self.hparams.critiques == "generate":
            self.generate_critiques()
        for source, split, part in self._sources():
            self._tokenized(source, split, part)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_dataset is not None:
            return
        hp = self.hparams
        if hp.critiques == "generate":  # each part tokenized on its own, already split and subsampled
            tokenized = {part: self._tokenized(source, split, part)
                         for source, split, part in self._sources()}
            self.train_dataset, self.stats["source"] = tokenized["train"]
            self.val_dataset = self.train_dataset.select([])
            if "val" in tokenized:
                self.val_dataset, self.stats["val_source" if hp.val_source else "held_out"] = tokenized["val"]
        else:
            data, self.stats["source"] = self._tokenized(hp.source, hp.split)
            val_data = data
            if hp.val_source:
                val_data, self.stats["val_source"] = self._tokenized(hp.val_source, hp.val_split)
            train, val = rows_read(data["prompt_key"], len(val_data) if hp.val_source else None,
                                   hp.val_fraction, hp.seed, hp.max_train_pairs, hp.max_val_pairs,
                                   self._sample_seed)
            self.train_dataset, self.val_dataset = data.select(train), val_data.select(val)
        self.test_dataset = self.val_dataset
        if hp.test_source:
            self.test_dataset, self.stats["test_source"] = self._tokenized(
                hp.test_source, hp.test_split, "test" if hp.critiques == "generate" else None)
        report_data(self.stats, self.train_dataset, self.val_dataset, hp.critiques,
                    self.trainer.logger if self.trainer is not None else None)

    @property
    def _sample_seed(self) -> int:
        return self.hparams.seed if self.hparams.sample_seed is None else self.hparams.sample_seed

    # -- loaders ------------------------------------------------------------------------------
    @property
    def pad_token_id(self) -> int:
        return pad_token_id(self.tokenizer)

    def collator(self) -> PairCollator:
        return PairCollator(self.pad_token_id, self.batch_layout)

    @property
    def batch_layout(self) -> Layout:
        """The layout with the packed row size resolved: as set, else the whole batch in one row
        where the model attends one sequence at a time, and ``max_length`` where it attends over
        masked rows."""
        layout = self.layout
        if layout.row_tokens is not None or not layout.packing or self._attends_per_sequence() is not False:
            return layout
        return replace(layout, row_tokens=self.hparams.max_length)

    def _loader(self, dataset, train: bool) -> DataLoader:
        batch_sampler = self.batching.sampler(self._lengths(dataset), self._sample_seed, train, self.layout)
        margin = ["margin"] if "margin" in dataset.column_names else []
        spans = ["chosen_critique_span", "rejected_critique_span"] if self.hparams.critique_targets else []
        columns = ["chosen_input_ids", "rejected_input_ids", *margin, *spans]
        dataset = IndexedDataset(dataset.select_columns(columns))  # each batch names its pairs
        kwargs = {"batch_sampler": batch_sampler, "collate_fn": self.collator(),
                  "num_workers": self.batching.num_workers}
        if not train:
            return DataLoader(dataset, **kwargs)
        return ResumableDataLoader(dataset, epoch_source=self._current_epoch, **kwargs)

    def _lengths(self, dataset) -> list[int]:
        """What batching sorts and budgets by: each pair's longer sequence, or its shared-prompt row."""
        if not self.layout.shared_prompt:
            return list(dataset["length"])
        chunks = dataset.select_columns(["chosen_input_ids", "rejected_input_ids"]).iter(batch_size=1024)
        return [self.layout.group_tokens(pair)
                for c in chunks for pair in zip(c["chosen_input_ids"], c["rejected_input_ids"])]

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = self.trainer
        loader = trainer.train_dataloader if trainer is not None and trainer.training else None
        if isinstance(loader, ResumableDataLoader):
            loader.batches_consumed += 1
        return batch

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, train=False)


def _typed(cls, value):
    """An options object from itself, its dict (as checkpoint hyperparameters hold it) or None (defaults)."""
    return cls(**value) if isinstance(value, dict) else value or cls()
