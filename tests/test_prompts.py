import pytest

from lightning_critrm.prompts import CritiqueFormat, render_plain_conversation


def test_critique_is_placed_where_the_template_says_and_braces_stay_literal():
    fmt = CritiqueFormat(template="<<{critique}>> {not a field}", version="t1")
    assert fmt.render("  uses {x} wrongly \n") == "<<uses {x} wrongly>> {not a field}"


@pytest.mark.parametrize("template", ["no placeholder", "{critique}{critique}"])
def test_template_needs_exactly_one_placeholder(template):
    with pytest.raises(ValueError, match="exactly once"):
        CritiqueFormat(template=template)


def test_plain_conversation_ends_with_the_assistant_cue():
    text = render_plain_conversation([{"role": "user", "content": "Q"}])
    assert text == "User: Q\n\nAssistant: "


def test_critic_prompt_asks_about_one_completion_without_a_score():
    from lightning_critrm.prompts import CriticPrompt

    msgs = CriticPrompt().render([{"role": "user", "content": "What is {completion}?"}], "It is 4.")
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    text = msgs[0]["content"]
    assert "[User prompt]\nWhat is {completion}?\n\n[Response]\nIt is 4.\n\n[Critique]" in text
    for aspect in ("Instruction following", "Correctness and truthfulness", "Helpfulness", "Style", "strengths and weaknesses"):
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
