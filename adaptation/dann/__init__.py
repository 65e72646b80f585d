"""DANN (Ganin & Lempitsky, ICML 2015)."""

from adaptation.dann.module import DANN
