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
