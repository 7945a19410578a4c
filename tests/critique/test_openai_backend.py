
import pytest
import yaml

from lightning_critrm.cli import main
from lightning_critrm.critique import CriticConfig, Endpoint
from lightning_critrm.critique.openai_backend import OpenAICritic

ASK = [[{"role": "user", "content": "[Response]\nfour\n\n[Critique]"}]]


def critic(server, **kw):
    backend = OpenAICritic(CriticConfig(backend="openai", model="m", endpoint=Endpoint(base_url=server.url, **kw)))
    backend.backoff_s = 0.01
    return backend


def test_retries_after_503_then_succeeds(fake_chat_server):
    fake_chat_server.fail_first = 2
    out = critic(fake_chat_server, max_retries=3).generate(ASK)
    assert out[0].text == "Critique: four looks right." and out[0].completion_tokens == 4
    assert len(fake_chat_server.requests) == 3
    sent = fake_chat_server.requests[-1]
    assert sent["model"] == "m" and sent["temperature"] == 0.0 and sent["max_tokens"] == 256


def test_gives_up_after_max_retries_and_reports_the_error(fake_chat_server):
    fake_chat_server.fail_first = 10
    out = critic(fake_chat_server, max_retries=2).generate(ASK)
    assert out[0].text is None and "HTTP 503" in out[0].error
    assert len(fake_chat_server.requests) == 3


def test_client_errors_are_not_retried(fake_chat_server):
    fake_chat_server.fail_first, fake_chat_server.fail_status = 1, 400
    out = critic(fake_chat_server, max_retries=5).generate(ASK)
    assert "HTTP 400" in out[0].error and len(fake_chat_server.requests) == 1


def test_missing_key_variable_is_a_clear_error(monkeypatch, fake_chat_server):
    monkeypatch.delenv("LCRM_NO_SUCH_KEY", raising=False)
    with pytest.raises(RuntimeError, match="LCRM_NO_SUCH_KEY"):
        critic(fake_chat_server, api_key_env="LCRM_NO_SUCH_KEY")


def test_fit_with_an_endpoint_critic_never_writes_the_api_key(tmp_path, monkeypatch, fake_chat_server, pairs_file, tiny_decoder_dir):
    secret = "sk-test-NEVER-WRITE-7f3a9c"
    monkeypatch.setenv("LCRM_TEST_API_KEY", secret)
    config = {
        "trainer": {"accelerator": "cpu", "max_steps": 2, "val_check_interval": 2, "check_val_every_n_epoch": None,
                    "enable_progress_bar": False, "default_root_dir": str(tmp_path / "run"), "log_every_n_steps": 1},
        "model": {"backbone": tiny_decoder_dir},
        "data": {
            "source": str(pairs_file), "batch_size": 4, "val_fraction": 0.25, "cache_dir": str(tmp_path / "cache"),
            "critiques": "generate",
            "critic": {"backend": "openai", "model": "served-critic",
                       "endpoint": {"base_url": fake_chat_server.url, "api_key_env": "LCRM_TEST_API_KEY",
                                    "max_concurrency": 4}},
        },
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cli = main(["fit", "--config", str(cfg)])
    assert cli.trainer.global_step == 2
    assert fake_chat_server.auth_headers and set(fake_chat_server.auth_headers) == {f"Bearer {secret}"}
    assert len(fake_chat_server.requests) == 48  # 24 pairs x 2 completions, one request each
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in written) and any("tfevents" in p.name for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    saved = yaml.safe_load(next(p for p in written if p.name == "config.yaml").read_text())
    assert saved["data"]["critic"]["endpoint"]["api_key_env"] == "LCRM_TEST_API_KEY"
    text = cli.datamodule.tokenizer.decode(cli.datamodule.train_dataset[0]["chosen_input_ids"])
    assert "looks right." in text  # the generated critique is what the RM reads
