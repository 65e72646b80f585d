"""SimGAN (Shrivastava et al., CVPR 2017)."""

from refinement.simgan.module import SimGAN
from refinement.simgan.networks import Refiner
