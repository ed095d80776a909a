"""Errors of the features layer; each message is one line a user can act on."""

from __future__ import annotations


class FeatureError(Exception):
    """A feature-extraction problem a user can act on (bad model, bad option, bad trace)."""


class ModelLoadError(FeatureError):
    """The scorer model cannot be found or loaded."""
