"""CycleGAN (Zhu et al., ICCV 2017)."""

from refinement.cyclegan.module import CycleGAN
