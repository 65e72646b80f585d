"""Generalization methods (empty until their issues land); importing this package registers them."""
