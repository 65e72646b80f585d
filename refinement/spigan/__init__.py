"""SPIGAN (Lee et al., ICLR 2019)."""

from refinement.spigan.module import SPIGAN
from refinement.spigan.parts import normalized_depth, perceptual_loss
