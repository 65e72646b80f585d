"""CSG (Chen et al., ICLR 2021): multi-stage contrastive learning against a frozen ImageNet encoder, A-pool."""

from generalization.csg.module import CSG
