"""CyCADA (Hoffman et al., ICML 2018)."""

from refinement.cycada.module import CyCADA
from refinement.cycada.parts import OutputDiscriminator, semantic_consistency_loss
from refinement.cycada.stages import StageShares, plan_stages, stage_lr_factor
