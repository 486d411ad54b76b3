"""Statistics: how a tensor's values compare with the theory of its method, and how signal travels
through a stack of layers initialized by a scheme."""

from initserve.core.stats.reference import Reference, reference_for
from initserve.core.stats.summary import ALPHA, MAX_SAMPLE, tensor_statistics

__all__ = ["ALPHA", "MAX_SAMPLE", "Reference", "reference_for", "tensor_statistics"]
