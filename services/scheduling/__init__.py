"""Kring scheduling service: Independent coordinators, assignment, preparation and the conference date."""
