"""Raksha: nightly batch fraud scoring of mobile-banking sessions with Spark."""

from __future__ import annotations

__version__ = "0.1.0"
