"""The event contract: catalogue, envelope, JSON Schemas, compatibility rules."""
