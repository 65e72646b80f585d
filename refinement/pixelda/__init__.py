"""PixelDA (Bousmalis et al., CVPR 2017)."""

from refinement.pixelda.module import PixelDA, masked_pairwise_mse
from refinement.pixelda.networks import NoiseGenerator, PixelDADiscriminator
