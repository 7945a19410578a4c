import pytest

from lightning_critrm.critique import CriticConfig
from lightning_critrm.data.completion_encoder import CompletionEncoder
from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.errors import InputError
from lightning_critrm.layout import Layout
from lightning_critrm.prompts import CritiqueFormat
from tests.data.test_formatting import CharTokenizer

PROMPT = ({"role": "user", "content": "Q"},)


def encoder(reads_critiques, store_dir=None):
    critique_format = CritiqueFormat("[{critique}]", "t") if reads_critiques else None
    formatter = SequenceFormatter(CharTokenizer(), 64, critique_format)
    return CompletionEncoder(formatter, None, reads_critiques, pad_token_id=0,
                             layout=Layout(shared_prompt=True),
                             store_dir=store_dir)


def test_a_completion_is_encoded_as_training_formats_it():
    plain, reading = encoder(False), encoder(True)
    assert plain.encode(PROMPT, "A", None) == plain.formatter.encode(PROMPT, "A", None).input_ids
    assert reading.encode(PROMPT, "A", "ok") == reading.formatter.encode(PROMPT, "A", "ok").input_ids
    assert len(reading.encode(PROMPT, "A", "ok")) == len(plain.encode(PROMPT, "A", None)) + len("[ok]")


def test_a_model_without_critiques_needs_no_critic():
    plain = encoder(False)
    assert plain.for_evaluation() is plain
    assert plain.critiques([(PROMPT, "A"), (PROMPT, "B")]) == [None,
                                                               None] and plain.fill([(PROMPT, "A")]) is None


def test_critiques_from_data_columns_need_the_evaluation_s_critic(tmp_path, tiny_decoder_dir):
    reading = encoder(True, store_dir=tmp_path)
    with pytest.raises(InputError, match="give the evaluation a critic"):
        reading.for_evaluation()
    given = reading.for_evaluation(CriticConfig(model=tiny_decoder_dir))
    assert given.store.critic.model == tiny_decoder_dir and given.store.path == tmp_path / "critiques.sqlite"
    assert given.layout == Layout(shared_prompt=True) and given.formatter is reading.formatter
