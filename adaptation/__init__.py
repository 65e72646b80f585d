"""Feature-level adaptation methods; importing this package registers them."""

from adaptation.dann import DANN
