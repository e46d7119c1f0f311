"""十户联防: alerts from a household to its 联防组 group, and their acknowledgements."""
