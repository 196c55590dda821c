"""Style knowledge shared by the chat and the workers: no torch, no platform."""
