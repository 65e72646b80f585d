"""DSBN: domain-specific batch normalization (Chang et al., CVPR 2019)."""

from refinement.dsbn.module import DSBN, DomainView
from refinement.dsbn.norm import DomainSpecificBatchNorm, convert_to_dsbn
