"""Crews: for work larger than one turn, a persona assembles a CrewAI team, reviews its plan,
lets it work, and reviews its result in the thread. crewai itself is imported only when a crew
runs (it is heavy, and an optional extra)."""
