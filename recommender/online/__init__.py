"""The online loop: what was served, attribution, online metrics and experiments."""
