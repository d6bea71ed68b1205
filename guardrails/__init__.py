"""accord.guardrails."""
