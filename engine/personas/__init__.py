"""Personas: who speaks (Cherry, Sophia, Karen, and any you add)."""

from engine.personas.model import Persona, Traits, describe_style, describe_traits, render_prompt
from engine.personas.registry import DomainRoute, PersonaConfigError, PersonaRegistry

__all__ = [
    "DomainRoute",
    "Persona",
    "PersonaConfigError",
    "PersonaRegistry",
    "Traits",
    "describe_style",
    "describe_traits",
    "render_prompt",
]
