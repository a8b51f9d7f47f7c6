"""What curious parties and coalitions can compute from what they saw (and, later, the
remedies)."""
