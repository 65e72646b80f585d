"""Generalization methods (no target image seen); importing this package registers them."""

from generalization.asg import ASG
from generalization.csg import CSG
