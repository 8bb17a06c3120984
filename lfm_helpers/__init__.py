"""lfm_helpers: the package behind *Small Frontier Models: a playbook*.

Each module does one stage of the LFM2-style recipe; notebooks import from here and keep their
own cells short. See ``README.md`` for the map from notebooks to modules.
"""

__version__ = "0.1.0"
