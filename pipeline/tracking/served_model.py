"""Where models registered before the package layout find their code (kept for them only).

Every logged model holds a copy of the served-model loader as it was when it was logged
(served_model_code.py, "models from code"); those logged before pipeline/tracking/registry/
import MLPClassifier from this path. New models import it from its home,
pipeline.tracking.registry.served_model.
"""

from pipeline.tracking.registry.served_model import MLPClassifier

__all__ = ["MLPClassifier"]
