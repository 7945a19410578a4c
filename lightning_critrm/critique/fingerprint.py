"""What a critic *is*, beyond its name: the weights and chat template behind a local model, or the
model an endpoint serves. It enters every critique's cache key, so a folder overwritten with other
weights, a changed chat template, or an endpoint that serves another model under the same name
never returns critiques the old model wrote.

The probe is cheap: each weight file's name and size and 16 evenly spaced 64 KiB samples of its
bytes (1 MiB read per file, whatever its size; another checkpoint differs in all of them, and a
copy on another machine matches), the chat template's text, or one ``GET /v1/models``. A job that only reads
cached critiques may run where the critic is not (a training node without the 70B critic's weights,
an endpoint that is down): it then uses the fingerprint recorded in the cache file when the
critiques were written.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
TEMPLATE_FILES = ("tokenizer_config.json", "chat_template.jinja", "chat_template.json")


def probe(critic) -> Optional[str]:
    """The critic's fingerprint as it is now, or None where it cannot be seen from here."""
    if critic.effective_backend == "openai":
        return _served_model(critic)
    folder = _local_folder(critic.model)
    return None if folder is None else folder_fingerprint(folder)


SAMPLES, SAMPLE_BYTES = 16, 64 * 1024


def folder_fingerprint(folder: Path) -> str:
    """Weight files (name, size, sampled bytes) and the chat template of a model folder."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES):
        size = path.stat().st_size  # follows the hub cache's symlinks to their blobs
        h.update(f"{path.relative_to(folder)}|{size}\n".encode())
        with path.open("rb") as fh:
            for i in range(SAMPLES):
                fh.seek(max(0, size - SAMPLE_BYTES) * i // (SAMPLES - 1))
                h.update(fh.read(SAMPLE_BYTES))
    for name in TEMPLATE_FILES:
        path = folder / name
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="replace")
            if name == "tokenizer_config.json":
                text = json.dumps(json.loads(text).get("chat_template"), sort_keys=True)
            h.update(f"{name}:{text}\n".encode())
    return "local:" + h.hexdigest()[:20]


def _local_folder(model: str) -> Optional[Path]:
    if os.path.isdir(model):
        return Path(model)
    from lightning_critrm.backbones import BUILTIN_BACKBONES, resolve_backbone

    if model in BUILTIN_BACKBONES:
        return Path(resolve_backbone(model))
    try:  # a hub name: the snapshot of the revision in the local cache
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not downloaded yet, or not a hub name
        return None


def _served_model(critic) -> Optional[str]:
    endpoint = critic.endpoint
    request = urllib.request.Request(endpoint.base_url.rstrip("/") + "/models")
    key = os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=min(endpoint.timeout_s, 30.0)) as response:
            listing = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    for entry in listing.get("data", []) if isinstance(listing, dict) else []:
        if isinstance(entry, dict) and entry.get("id") == critic.model:
            # vLLM reports the creation time of the response itself: not part of the identity.
            stable = {k: v for k, v in entry.items() if k not in ("created", "object", "permission")}
            return "served:" + hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:20]
    return None
