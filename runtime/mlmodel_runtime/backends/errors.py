"""Why a model could not be loaded or run (mapped to exit codes and HTTP statuses elsewhere)."""

from __future__ import annotations


class ModelLoadError(Exception):
    """The model file, or its fit with metadata.json, is not servable."""


class DeviceUnavailable(ModelLoadError):
    """`cuda` was asked for, but this build or this machine has no usable GPU."""


class InferenceError(Exception):
    """The framework refused to run the model on these (already validated) inputs."""
