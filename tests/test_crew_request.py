"""How a crew command's text is read, the same on every platform."""

import pytest

from engine.crews.request import CrewRequest, CrewRequestError, crew_request, parse_crew_text


@pytest.mark.parametrize(("text", "domain", "complexity", "rest"), [
    ("sales high: grow the Q3 pipeline", "sales", "high", "grow the Q3 pipeline"),
    ("domain=research complexity=low why churn?", "research", "low", "why churn?"),
    ("--domain data --complexity medium find the leak", "data", "medium", "find the leak"),
    ("Data: why", "data", "medium", "why"),
    ("Sales is down, why?", None, "medium", "Sales is down, why?"),  # a sentence, not options
    ("sophia, plan the launch", None, "medium", "sophia, plan the launch"),
    ("", None, "medium", ""),
])
def test_leading_options_are_read_and_the_rest_is_the_work(text, domain, complexity, rest):
    req = parse_crew_text(text)
    assert (req.domain, req.complexity, req.text) == (domain, complexity, rest)


@pytest.mark.parametrize(("text", "says"), [
    ("domain=finance grow", "Domains: sales, marketing"),
    ("complexity=extreme grow", "Complexity is one of low, medium, high"),
    ("sales marketing: grow", "Give the domain once"),
])
def test_a_bad_option_gets_a_message_that_says_what_to_use(text, says):
    with pytest.raises(CrewRequestError, match=says):
        parse_crew_text(text)


def test_options_travel_on_the_task_and_back():
    req = crew_request("grow", "Marketing", "HIGH")
    assert req.options() == {"domain": "marketing", "complexity": "high"}
    assert CrewRequest.from_options("grow", req.options()) == req
    assert crew_request("grow").options() == {"complexity": "medium"}
