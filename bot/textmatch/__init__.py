"""Prompt-rule matching: blocked terms (whole words) and admin regular expressions.

- `normalise`: `fold` a prompt (invisible characters, lookalikes, accents, case, leetspeak)
  with a map back to the original characters;
- `words`: the words of a folded prompt and how a word matches a term's word;
- `rules`: `Rule`, `RuleSet` (a guild's compiled rules) and `Hit`; terms matched in-process;
- `regex_check`: add-time validation of a blocked regex (static checks, timing probes);
- `sandbox`: the helper process regexes run in, killed and restarted when one overruns.
"""

from bot.textmatch.normalise import fold
from bot.textmatch.regex_check import PROBE_TIMEOUT_S, check_regex, check_regex_static
from bot.textmatch.rules import MATCH_TIMEOUT_S, Rule, RuleError, RuleSet, term_key, term_words
from bot.textmatch.sandbox import RegexSandbox, RegexTimeout, SandboxError, default_sandbox

__all__ = [
    "MATCH_TIMEOUT_S",
    "PROBE_TIMEOUT_S",
    "RegexSandbox",
    "RegexTimeout",
    "Rule",
    "RuleError",
    "RuleSet",
    "SandboxError",
    "check_regex",
    "check_regex_static",
    "default_sandbox",
    "fold",
    "term_key",
    "term_words",
]
