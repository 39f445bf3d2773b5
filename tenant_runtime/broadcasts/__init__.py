"""Broadcasts: an admin's message to the shop's users, durable, resumable, paced, driven by the lock holder."""
