"""Kring referral service: Intake of referrals from bureaus (AMQP) and families (HTTP), consent, the family's personal data."""
