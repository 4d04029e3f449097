"""Kring plans service: The family's plan, bottom-line requirements and professional acceptance."""
