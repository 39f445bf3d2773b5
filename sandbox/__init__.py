"""The product on loopback, for tests, benchmarks and the demo: never shipped in the wheel or the image.

- `sandbox.telegram`: a fake Telegram Bot API server (the real wire protocol, webhooks and getUpdates);
- `sandbox.kie`: a fake KIE.ai (createTask, recordInfo, callbacks, credits, rate limits);
- `sandbox.stack`: both fakes plus the operator CLI and real supervisor processes, wired together;
- `sandbox.demo`: the offline demo (`python -m sandbox`, `make demo`).
"""
