"""Leonardo.AI v2 generations with `ltxv-2.3-pro` / `ltxv-2.3-fast`.

- `limits`: what the models offer (sizes, durations, rate limits);
- `wire`: the create body, the answer models and their readers (the wire format);
- `provider`: `LeonardoProvider`, the client calls and the choices where the docs disagree.
"""

from bot.providers.leonardo.limits import DURATIONS, limits_for
from bot.providers.leonardo.provider import LeonardoProvider
from bot.providers.leonardo.wire import GenerationAnswer, parse_generation

__all__ = ["DURATIONS", "GenerationAnswer", "LeonardoProvider", "limits_for", "parse_generation"]
