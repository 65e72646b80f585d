"""AdaBN / AdaIN-style BN-statistics replacement (Li et al. 2016); the statistics pass is ``syn2real.bn_stats``."""

from refinement.adabn.callback import AdaBNCallback
from refinement.adabn.module import AdaBN
