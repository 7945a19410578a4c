"""A critique's key follows the critic's model itself, not only its name."""

import json
import shutil

import pytest

from lightning_critrm.critique import CriticConfig, Endpoint
from lightning_critrm.critique.config import ResolvedCritic
from lightning_critrm.critique.fingerprint import folder_fingerprint, probe
from lightning_critrm.critique.store import CritiqueStore
from lightning_critrm.errors import NotReadyError

PROMPT = ({"role": "user", "content": "Q"},)


@pytest.fixture
def critic_dir(tmp_path, tiny_decoder_dir):
    folder = tmp_path / "critic"
    shutil.copytree(tiny_decoder_dir, folder)
    return folder


def test_overwritten_weights_or_another_chat_template_change_the_fingerprint(critic_dir, tmp_path,
                                                                             tiny_decoder_dir):
    from safetensors.torch import load_file, save_file

    first = folder_fingerprint(critic_dir)
    assert first == folder_fingerprint(critic_dir)
    copy = tmp_path / "copy"
    shutil.copytree(critic_dir, copy)
    assert folder_fingerprint(copy) == first  # a copy (another machine) is the same critic
    weights = next(critic_dir.glob("*.safetensors"))
    tensors = load_file(weights)
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in tensors.items()}, weights)
    assert folder_fingerprint(critic_dir) != first  # same file names and sizes, other weights
    shutil.copy(copy / weights.name, weights)
    assert folder_fingerprint(critic_dir) == first  # the same weights again
    config = critic_dir / "tokenizer_config.json"
    values = json.loads(config.read_text())
    values["chat_template"] = "{{ messages[0]['content'] }}"
    config.write_text(json.dumps(values))
    assert folder_fingerprint(critic_dir) != first


def test_the_fingerprint_enters_every_key():
    critic = CriticConfig(dtype="float32")
    a, b = ResolvedCritic.pin(critic, "local:a"), ResolvedCritic.pin(critic, "local:b")
    assert a.key(PROMPT, "A") != b.key(PROMPT, "A") != critic.key(PROMPT, "A")
    assert a.as_dict() == critic.as_dict()  # configs and hparams keep what the user set


def test_an_endpoint_is_identified_by_what_it_serves(fake_chat_server):
    critic = CriticConfig(backend="openai", model="m", endpoint=Endpoint(base_url=fake_chat_server.url))
    first = probe(critic)
    assert first is not None and first.startswith("served:") and probe(critic) == first  # `created` ignored
    fake_chat_server.models = [("m", "/models/another-checkpoint")]
    assert probe(critic) not in (None, first)  # the same name serving another model
    fake_chat_server.models = []
    assert probe(critic) is None


def test_a_store_reads_recorded_critiques_where_the_critic_is_not(critic_dir, tmp_path, fake_chat_server):
    from tests.critique.test_fill import CountingCritic

    local = CriticConfig(model=str(critic_dir), dtype="float32")
    store = CritiqueStore(local, tmp_path / "c.sqlite", backend_factory=CountingCritic)
    items = [(PROMPT, "A"), (PROMPT, "B")]
    assert store.fill(items, progress=False).generated == 2
    shutil.rmtree(critic_dir)  # a training node without the critic's weights
    away = CritiqueStore(local, tmp_path / "c.sqlite", backend_factory=CountingCritic)
    assert away.lookup(items) == ["critique of A", "critique of B"]
    with pytest.raises(NotReadyError, match="cannot be reached from here"):
        CritiqueStore(local, tmp_path / "empty.sqlite").lookup(items)

    remote = CriticConfig(backend="openai", model="m", endpoint=Endpoint(base_url=fake_chat_server.url))
    store = CritiqueStore(remote, tmp_path / "r.sqlite")
    assert store.fill(items, progress=False).generated == 2
    fake_chat_server.models = [("m", "/models/another-checkpoint")]
    assert CritiqueStore(remote, tmp_path / "r.sqlite").lookup(items) == [None, None]  # not the same model
