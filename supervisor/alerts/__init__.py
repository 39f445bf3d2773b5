"""Alerts that reach a person: incidents detected from what is true now, told once with a recovery,
by one sender across replicas, through the platform bot and/or a JSON webhook (see service.py).

Modules: model (what an incident is), detect (what is wrong now), incidents (their state in Postgres),
texts and message (the words and the JSON), channels (Telegram chats, webhook), health (each
process's own health for the sender), service (the loop), cli (`alerts test`)."""

__all__: list[str] = []
