"""Internals of bert4sim's bert4keras facade (``bert4sim.backend``, ``snippets``, ``optimizers``).

Only the facade modules import this package; no module below them does
(import-linter checks it). Nothing here modifies Keras or TensorFlow: the
``keras`` and ``K`` names bert4keras scripts import are namespaces built here.
"""
