"""Promo codes: created by tenant admins or the operator, redeemed by users once each, never beyond max uses."""
