"""From scores to actions: the decision rules, the ranked review queue, and what analysts may see
(``privacy``)."""
