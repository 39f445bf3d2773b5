"""A fake Telegram Bot API server, one file per part: `server` (the HTTP app and its entry point),
`methods` (Bot API method table), `messages` and `payments` (method handlers), `state` and `model`
(bots, chats, updates), `params` (request decoding), `text` (entities), `webhook` (delivery to bots),
`control` (the test-control endpoints)."""
