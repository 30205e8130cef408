"""skipjoin gateway: OpenAI-compatible front door, Redis queue, dispatcher."""
