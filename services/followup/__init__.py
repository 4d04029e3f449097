"""Kring followup service: The three-month follow-up, outcomes and what funders see."""
