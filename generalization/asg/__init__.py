"""ASG (Chen et al., ICML 2020): proxy guidance and a learned layer-wise learning-rate policy."""

from generalization.asg.module import ASG
