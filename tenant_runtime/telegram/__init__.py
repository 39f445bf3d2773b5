"""The Telegram side of a tenant bot: handlers, keyboards, texts, screens, filters, session, FSM storage."""
