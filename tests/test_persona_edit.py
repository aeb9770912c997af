"""Editing a persona field by field: what a person types, the persona it makes, what changed."""

from __future__ import annotations

import pytest

from engine.modes import Mode
from engine.personas import Persona, PersonaRegistry
from engine.personas.edit import FIELDS, PersonaEditError, apply_changes, diff, flatten, parse_assignments


@pytest.fixture
def cherry() -> Persona:
    return PersonaRegistry.defaults()["cherry"]


def test_fields_cover_every_persona_field_but_the_name():
    expected = set()
    for field, info in Persona.model_fields.items():
        sub = getattr(info.annotation, "model_fields", None)
        expected |= {f"{field}.{s}" for s in sub} if sub else {field}
    assert set(FIELDS) == expected - {"name"}


def test_parse_assignments_types_each_value():
    changes = parse_assignments([
        "role=Data analyst", "traits.openness=0.8", "humor = 0,25", "domains=sales, data ,,research",
        "preferred_modes=Critic,planner", "color=bright blue", "model=none", "avatar.url=",
        "backstory=She says: a=b, and more.",  # only the first '=' splits
    ])
    assert changes == {
        "role": "Data analyst", "traits.openness": 0.8, "humor": 0.25, "domains": ["sales", "data", "research"],
        "preferred_modes": [Mode.CRITIC, Mode.PLANNER], "color": "bright blue", "model": None,
        "avatar.url": None, "backstory": "She says: a=b, and more.",
    }
    assert parse_assignments(["domains="]) == {"domains": []}
    assert parse_assignments(["colour=red", "modes=planner"]) == {"color": "red", "preferred_modes": [Mode.PLANNER]}
    assert parse_assignments(["role= Analyst ", "backstory=  indented\n"]) == {
        "role": "Analyst", "backstory": "  indented\n"}  # a one-line field's stray spaces go; long text is kept as given


@pytest.mark.parametrize("items, field, words", [
    (["traits.openness=1.2"], "traits.openness", ["1.2", "out of range", "from 0 to 1"]),
    (["humor=-0.1"], "humor", ["out of range", "from 0 to 1"]),
    (["formality=high"], "formality", ["'high' is not a number from 0 to 1"]),
    (["traits.neuroticism=nan"], "traits.neuroticism", ["from 0 to 1"]),
    (["color=blu"], "color", ["unknown colour 'blu'", "did you mean blue?", "bright_blue", "purple"]),
    (["preferred_modes=researcher,critc"], "preferred_modes", ["unknown mode 'critc'", "did you mean critic?",
                                                              "researcher, critic, planner"]),
    (["rol=x"], "rol", ["unknown field", "did you mean role?"]),
    (["openness=0.5"], "openness", ["did you mean traits.openness?"]),
    (["traits=0.5"], "traits", ["traits.openness", "traits.neuroticism"]),
    (["name=bob"], "name", ["cannot be changed", "archive"]),
    (["role=a", "role=b"], "role", ["given twice"]),
    (["role Analyst"], None, ["write field=value", "role=Analyst"]),
])
def test_a_bad_assignment_names_the_field_and_what_is_allowed(items, field, words):
    with pytest.raises(PersonaEditError) as caught:
        parse_assignments(items)
    assert caught.value.field == field
    if field:
        assert str(caught.value).startswith(f"{field}:")
    for word in words:
        assert word in str(caught.value)


def test_apply_changes_makes_a_valid_new_persona_and_leaves_the_old(cherry):
    after = apply_changes(cherry, parse_assignments(["role=Analyst", "traits.openness=0.1", "domains=a,b",
                                                     "avatar.emoji_char=🧪", "model=claude-x"]))
    assert (after.role, after.traits.openness, after.domains, after.avatar.emoji_char, after.model) == \
        ("Analyst", 0.1, ["a", "b"], "🧪", "claude-x")
    assert after.traits.conscientiousness == cherry.traits.conscientiousness  # the rest is kept
    assert cherry.role == "Strategic lead" and cherry.traits.openness == 0.8


def test_apply_changes_takes_raw_text_as_from_chat(cherry):
    after = apply_changes(cherry, {"Traits.Openness": "0.3", "preferred_modes": "critic", "humor": 1})
    assert (after.traits.openness, after.preferred_modes, after.humor) == (0.3, [Mode.CRITIC], 1.0)
    with pytest.raises(PersonaEditError, match=r"^humor: .*from 0 to 1"):
        apply_changes(cherry, {"humor": "2"})


@pytest.mark.parametrize("changes, field, words", [
    ({"template": "Hi [name], [task] [mood]"}, "template", ["unknown placeholder [mood]", "[task]", "[memory]"]),
    ({"display_name": "  "}, "display_name", ["must not be empty"]),
    ({"colr": "red"}, "colr", ["did you mean color?"]),
])
def test_apply_changes_validates_the_whole_persona(cherry, changes, field, words):
    with pytest.raises(PersonaEditError) as caught:
        apply_changes(cherry, changes)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}:")
    for word in words:
        assert word in str(caught.value)


def test_diff_names_each_changed_field_with_old_and_new(cherry):
    after = apply_changes(cherry, parse_assignments(["role=Analyst", "traits.openness=0.5",
                                                     "preferred_modes=critic", "avatar.url=https://x.test/a.png"]))
    assert diff(cherry, after) == {
        "role": ("Strategic lead", "Analyst"),
        "traits.openness": (0.8, 0.5),
        "preferred_modes": (["planner"], ["critic"]),  # JSON form: ready for the history table
        "avatar.url": (None, "https://x.test/a.png"),
    }
    assert diff(cherry, cherry) == {}
    assert diff(cherry, apply_changes(cherry, {"role": cherry.role})) == {}


def test_flatten_names_every_field(cherry):
    flat = flatten(cherry)
    assert flat["name"] == "cherry" and flat["traits.neuroticism"] == 0.2 and flat["avatar.emoji_char"] == "🍒"
    assert set(flat) == set(FIELDS) | {"name"}
