"""DSON: domain-specific optimized normalization (Seo et al., ECCV 2020)."""

from refinement.dson.module import DSON, DomainEnsemble
from refinement.dson.norm import DomainSpecificOptimizedNorm2d, convert_to_dson
