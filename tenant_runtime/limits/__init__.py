"""A tenant's abuse limits: the free daily quota, open generations per user, messages and taps per minute."""
