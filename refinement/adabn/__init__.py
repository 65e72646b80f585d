"""AdaBN / AdaIN-style BN-statistics replacement (Li et al. 2016)."""

from refinement.adabn.callback import AdaBNCallback
from refinement.adabn.module import AdaBN
from refinement.adabn.stats import bn_layers, reestimate_bn_stats
