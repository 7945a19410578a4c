"""The notebooks execute headless on tiny inputs, and are stored without outputs."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from lightning_critrm.cli import main
from lightning_critrm.study.results import RunResult, results_csv
from tests.conftest import REPO
from tests.critique.conftest import fake_chat_server  # noqa: F401  (the fixture)
from tests.test_cli import tiny_endpoint_critic_config

NOTEBOOKS = REPO / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []))


@pytest.mark.parametrize("name", ["data_efficiency.ipynb", "inspect_critiques.ipynb"])
def test_notebooks_are_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_data_efficiency_reads_a_study_csv_and_draws_the_figure(tmp_path, monkeypatch):
    runs = [RunResult(size, condition, seed, acc, 0.6, 50, size, 4, 10.0)
            for condition, accs in {"none": [0.6, 0.7, 0.8], "critiques": [0.75, 0.9, 0.95]}.items()
            for seed in (0, 1) for size, acc in zip([16, 32, 64], accs)]
    (tmp_path / "results.csv").write_text(results_csv(runs))
    monkeypatch.setenv("STUDY_CSV", str(tmp_path / "results.csv"))
    notebook = execute("data_efficiency.ipynb")
    out = printed(notebook)
    assert "12 runs from" in out
    # 16 pairs: 0.75 lies halfway from 0.7 (32 plain pairs) to 0.8 (64), so 32 * 2 ** 0.5 = 45.3 plain
    # pairs, 2.83x; 32 and 64 pairs (0.9, 0.95) beat every plain point: > 64/32 and > 64/64.
    assert "critiques: > 1x to 2.83x the plain pairs (none)" in out
    assert images(notebook) == 1


def test_inspect_critiques_browses_the_cache_and_scores_with_and_without_critiques(
    tmp_path, pairs_file, tiny_decoder_dir, fake_chat_server, monkeypatch,  # noqa: F811 (the imported fixture)
):
    monkeypatch.setenv("LIGHTNING_CRITRM_CACHE", str(tmp_path / "cache"))
    cfg = tiny_endpoint_critic_config(tmp_path, tiny_decoder_dir, pairs_file, fake_chat_server.url)
    models = {}
    for critiques in ("generate", "none"):
        root = tmp_path / critiques
        common = ["--config", str(cfg), "--data.critiques", critiques, "--trainer.default_root_dir",
                  str(root)]
        main(["fit", *common, "--trainer.max_steps", "2"])
        models[critiques] = tmp_path / f"rm_{critiques}"
        main(["export", *common, "--ckpt_path", "last", "--out", str(models[critiques])])
    monkeypatch.setenv("CONFIG", str(cfg))
    monkeypatch.setenv("MODEL_WITH_CRITIQUES", str(models["generate"]))
    monkeypatch.setenv("MODEL_WITHOUT_CRITIQUES", str(models["none"]))
    monkeypatch.setenv("CRITIC_BASE_URL", fake_chat_server.url)
    sent = len(fake_chat_server.requests)
    notebook = execute("inspect_critiques.ipynb")
    out = printed(notebook)
    assert "critiques: generate" in out and "critiques.sqlite: 48 critiques" in out
    assert "chosen_critique: Critique: " in out  # the fake critic's text, read from the cache
    assert "with critiques: accuracy" in out and "without critiques: accuracy" in out
    assert images(notebook) == 2  # the length histograms and the reward scatter
    assert len(fake_chat_server.requests) == sent  # it reads critiques, never writes them
    assert (json.loads((models["generate"] / "config.json").read_text())["lightning_critrm"]["critiques"]
            == "generate")
