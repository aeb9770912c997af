import pytest
import yaml

from engine.personas import PersonaConfigError, PersonaRegistry, describe_traits, render_prompt
from engine.personas.model import Traits
from engine.personas.registry import DEFAULT_PERSONA


@pytest.fixture
def registry():
    return PersonaRegistry.defaults()


def test_defaults_ship_three_distinct_personas(registry):
    assert registry.names == ["cherry", "sophia", "karen"]
    assert registry.default == DEFAULT_PERSONA == "cherry"
    cherry = registry["cherry"]
    assert cherry.traits.model_dump() == {
        "openness": 0.8, "conscientiousness": 0.9, "extraversion": 0.5, "agreeableness": 0.5, "neuroticism": 0.2,
    }
    assert (cherry.humor, cherry.formality) == (0.4, 0.7)
    traits = {p.name: tuple(p.traits.model_dump().values()) + (p.humor, p.formality) for p in registry}
    assert len(set(traits.values())) == 3
    voices = {p.name: (p.avatar.emoji, p.color) for p in registry}
    assert len(set(voices.values())) == 3


def test_trait_descriptions_only_for_high_and_low():
    mid = Traits(openness=0.5, conscientiousness=0.5, extraversion=0.5, agreeableness=0.5, neuroticism=0.5)
    assert describe_traits(mid) == "You are balanced, without strong leanings."
    edge = Traits(openness=0.7, conscientiousness=0.3, extraversion=0.71, agreeableness=0.29, neuroticism=0.5)
    text = describe_traits(edge)
    assert "curious" not in text and "flexible" not in text  # exactly 0.7 / 0.3 say nothing
    assert "outgoing" in text and "blunt" in text


def test_prompt_fills_every_placeholder_and_differs_per_persona(registry):
    prompts = {
        p.name: render_prompt(p, mode="You are in critic mode.", task="why did [name] signups drop?", memory="")
        for p in registry
    }
    for name, prompt in prompts.items():
        assert "[" not in prompt.replace("[name] signups", "")  # the task's own brackets stay as written
        assert registry[name].display_name in prompt
        assert "critic mode" in prompt and "(nothing yet)" in prompt
    assert "formally" in prompts["sophia"] and "casually" in prompts["karen"]
    assert "organised and thorough" in prompts["cherry"]


def _entry(**over):
    base = yaml.safe_load((__import__("importlib.resources").resources.files("engine.personas") / "defaults.yaml").read_text())["sophia"]
    return {**base, **over}


def test_loading_reports_every_problem_at_once():
    bad = {
        "sophia": _entry(traits={"openness": 1.5, "conscientiousness": 0.5, "extraversion": 0.5, "agreeableness": 0.5, "neuroticism": -1}),
        "sophie": _entry(display_name="Sophia"),
        "karen": _entry(display_name="Karen", template="Hi [name], [unknown_thing]"),
    }
    with pytest.raises(PersonaConfigError) as err:
        PersonaRegistry.from_mapping(bad, "test.yaml")
    problems = "\n".join(err.value.problems)
    assert "sophia.traits.openness" in problems
    assert "sophia.traits.neuroticism" in problems
    assert "already used" in problems
    assert "[unknown_thing]" in problems
    assert len(err.value.problems) == 4


def test_from_yaml_file_errors_are_readable(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("cherry: [not, a, mapping]\n")
    with pytest.raises(PersonaConfigError, match="expected a mapping"):
        PersonaRegistry.from_yaml(path)
    with pytest.raises(PersonaConfigError, match="cannot read"):
        PersonaRegistry.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "text, persona, rest",
    [
        ("sophia, why did signups drop?", "sophia", "why did signups drop?"),
        ("Sophia why", "sophia", "why"),
        ("@Karen: pricing?", "karen", "pricing?"),
        ("  KAREN —  hi", "karen", "hi"),
        ("cherry", "cherry", ""),
        ("sophisticated question", None, "sophisticated question"),
        ("why did signups drop?", None, "why did signups drop?"),
        ("", None, ""),
    ],
)
def test_addressing(registry, text, persona, rest):
    found, remainder = registry.split_addressee(text)
    assert (found.name if found else None) == persona
    assert remainder == rest


def test_unknown_addressee_only_with_at(registry):
    assert registry.unknown_addressee("@bob what now?") == "bob"
    assert registry.unknown_addressee("@sophia what now?") is None
    assert registry.unknown_addressee("So, why did it fail?") is None


@pytest.mark.parametrize(
    "text, persona",
    [
        ("how are our sales doing", "karen"),
        ("plan the marketing launch", "karen"),
        ("status of the projects", "karen"),
        ("look at the research data", "sophia"),
        ("write content for the blog", "sophia"),
        ("why did signups drop?", "cherry"),
        ("", "cherry"),
    ],
)
def test_domain_routing(registry, text, persona):
    route = registry.route_by_domain(text)
    assert route.persona == persona
    assert route.reason
    assert registry.route_by_domain(text) == route  # deterministic


def test_domain_tie_goes_to_default(registry):
    route = registry.route_by_domain("sales data")
    assert route.persona == "cherry" and "tie" in route.reason


def test_a_file_reports_repeated_keys_bad_yaml_and_list_entries(tmp_path):
    from engine.personas.registry import load_yaml

    problems: list[str] = []
    load_yaml("sophia:\n  humor: 0.2\n  humor: 0.3\n", problems)
    assert problems == ["line 3: 'humor' is given twice in the same place; the later one would silently replace the first"]
    problems = []
    assert load_yaml("a: [1,\n", problems) is None and problems[0].startswith("not valid YAML at line")
    with pytest.raises(PersonaConfigError) as err:
        PersonaRegistry.from_mapping([_entry(name="sophia", color="Bright Blue"), _entry(display_name="X", color="mauve")])
    assert err.value.problems[0] == "entry 2: the persona has no name"
    assert any(p.startswith("entry 2.color: unknown colour 'mauve'") for p in err.value.problems)
    assert len(err.value.problems) == 2  # "Bright Blue" is bright_blue: fine
