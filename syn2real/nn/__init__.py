"""Network parts shared by two or more methods."""

from syn2real.nn.domain_discriminators import ConvFeatureDiscriminator, FeatureDiscriminator, domain_discriminator
from syn2real.nn.domain_norm import DomainRouted, replace_modules, use_domain
from syn2real.nn.generators import ResnetGenerator, init_gan_weights, norm_layer
from syn2real.nn.grl import GradientReversal, grad_reverse
from syn2real.nn.image_discriminators import LocalDiscriminator, PatchDiscriminator
from syn2real.nn.image_pool import ImagePool
