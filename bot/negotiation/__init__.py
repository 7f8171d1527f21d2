"""Negotiation: what a member asked for → what a provider will really make, and its cost.

- `fit`: `negotiate()` maps a request onto a provider's `ProviderLimits` before anything is
  spent, listing every change as an `Adjustment`;
- `sizes`: the size geometry it uses (aspect presets, the provider's grid, pixel budgets);
- `reported`: `merge_adjustments()` folds what a provider reports after submit back in.
"""

from bot.negotiation.fit import negotiate
from bot.negotiation.reported import merge_adjustments
from bot.negotiation.sizes import aspect_label, parse_aspect

__all__ = ["aspect_label", "merge_adjustments", "negotiate", "parse_aspect"]
