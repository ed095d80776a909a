"""Teacher-forced token-uncertainty and attention features (the only layer importing torch).

Import submodules directly (`tracefail.features.loading`, `.extract`); this package stays light.
"""

from tracefail.features.errors import FeatureError, ModelLoadError

__all__ = ["FeatureError", "ModelLoadError"]
