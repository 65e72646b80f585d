"""Refinement methods (pixel-level refiners and BN-statistics adaptation); importing this registers them."""

from refinement.adabn import AdaBN
from refinement.cycada import CyCADA
from refinement.cyclegan import CycleGAN
from refinement.dsbn import DSBN
from refinement.dson import DSON
from refinement.pixelda import PixelDA
from refinement.simgan import SimGAN
from refinement.spigan import SPIGAN
