import pytest

from lightning_critrm.prompts import CritiqueFormat, critique_chat_template, plain_chat_template


def test_critique_is_placed_where_the_template_says_and_braces_stay_literal():
    fmt = CritiqueFormat(template="<<{critique}>> {not a field}", version="t1")
    assert fmt.render("  uses {x} wrongly \n") == "<<uses {x} wrongly>> {not a field}"


@pytest.mark.parametrize("template", ["no placeholder", "{critique}{critique}"])
def test_template_needs_exactly_one_placeholder(template):
    with pytest.raises(ValueError, match="exactly once"):
        CritiqueFormat(template=template)


def render(template, messages, add_generation_prompt=False):
    from transformers.utils.chat_template_utils import _compile_jinja_template

    return _compile_jinja_template(template).render(messages=messages,
                                                    add_generation_prompt=add_generation_prompt)


def test_plain_template_writes_role_turns_its_specials_and_the_assistant_cue():
    template = plain_chat_template("[CLS]", "[SEP]")
    user = [{"role": "user", "content": "Q"}]
    assert render(template, user, add_generation_prompt=True) == "[CLS]User: Q\n\nAssistant: "
    assert render(template,
                  [*user, {"role": "assistant", "content": "A"}]) == "[CLS]User: Q\n\nAssistant: A[SEP]"


def test_a_critique_message_is_folded_into_the_assistant_turn_before_it():
    base = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>\n{% endfor %}"
    template = critique_chat_template(base, CritiqueFormat(template=' {"q": "{critique}"} ', version="t"))
    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
                {"role": "critique", "content": "  fine \n"}]
    assert render(template, messages) == '<user>Q</s>\n<assistant>A {"q": "fine"} </s>\n'
    assert render(template, messages[:2]) == render(base, messages[:2])  # no critique: the base's text
    # An export's template folds already; reading it as a base folds nothing twice.
    assert critique_chat_template(template, CritiqueFormat(template=' {"q": "{critique}"} ', version="t")) \
        == template


def test_critic_prompt_asks_about_one_completion_without_a_score():
    from lightning_critrm.prompts import CriticPrompt

    msgs = CriticPrompt().render([{"role": "user", "content": "What is {completion}?"}], "It is 4.")
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    text = msgs[0]["content"]
    assert "[User prompt]\nWhat is {completion}?\n\n[Response]\nIt is 4.\n\n[Critique]" in text
    for aspect in ("Instruction following", "Correctness and truthfulness", "Helpfulness", "Style",
                   "strengths and weaknesses"):
        assert aspect in text
    assert "Do not give a numeric score" in text
    scored = CriticPrompt(allow_score=True).render([{"role": "user", "content": "Q"}], "A")[0]["content"]
    assert "Score: N/10" in scored


def test_critic_prompt_shows_multi_turn_prompts_as_a_transcript():
    from lightning_critrm.prompts import CriticPrompt

    text = CriticPrompt().render(
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}], "Hello"
    )[0]["content"]
    assert "System: Be terse.\n\nUser: Hi" in text
