"""Kring's shared library: event contract, messaging, storage, logging. No business rules."""
