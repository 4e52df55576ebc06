"""Model families, training side: one module per family with a pure ``fit`` function
(arrays in, the arrays its artifact needs out); ``fit.py`` dispatches on the family's
name. The hyper-parameter schemas are ``recommender.families``' (the one definition);
how each kind scores is ``recommender.family_scoring``'s."""
