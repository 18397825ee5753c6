"""Model quality that travels in the package: functional examples (checked before a revision serves) and the
drift baseline (live inputs and outputs compared with the training data). See docs/quality.md.

Needs numpy (the runtime's install), so `mlmodel pack` imports it only when --examples or --baseline is given.
"""
