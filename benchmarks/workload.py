"""The labelled support workload: conversations of one request and its follow-ups.

Every request carries the agent that should handle it (its label). Some requests contain a
routing keyword (accord's rule tier answers them for free); the others are phrased without one
and need a model to classify them. The same workload feeds every contender.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

BILLING, TECH, ACCOUNT, HUMAN = "billing", "tech", "account", "human_triage"
AGENTS = (BILLING, TECH, ACCOUNT, HUMAN)

INVOICES = ("INV-1001", "INV-1002", "INV-1003", "INV-1004", "INV-1005")
EMAILS = ("alice@example.com", "bob@example.com", "carla@example.com", "dev@example.com")

# (label, has a routing keyword, template)
TEMPLATES: tuple[tuple[str, bool, str], ...] = (
    (BILLING, True, "Can you send me a copy of invoice {inv}?"),
    (BILLING, True, "I was charged twice for {inv}, please check"),
    (BILLING, True, "Please refund $20 of {inv}"),
    (BILLING, True, "Why is the payment for {inv} still open?"),
    (BILLING, False, "You took money from my card twice last month for the team fee, can I get it back?"),
    (BILLING, False, "How much did I pay you in October? I'm {email}"),
    (TECH, True, "My app crashes on start since this morning"),
    (TECH, True, "I get an error when I export a report"),
    (TECH, True, "The calendar sync is broken on my phone"),
    (TECH, True, "Everything is very slow today"),
    (TECH, False, "The dashboard shows a blank page after the last update"),
    (TECH, False, "Exports never finish downloading on my laptop"),
    (ACCOUNT, True, "I forgot my password, my email is {email}"),
    (ACCOUNT, True, "How do I upgrade to the enterprise plan? {email}"),
    (ACCOUNT, True, "Please cancel my subscription, {email}"),
    (ACCOUNT, False, "Can you add two more seats for my team? I'm {email}"),
    (ACCOUNT, False, "I need to change the address you have on file for {email}"),
    (HUMAN, True, "I want to speak to a manager right now"),
    (HUMAN, True, "This is a formal complaint about your service"),
    (HUMAN, False, "This is the third time I write and nobody answers me"),
)


@dataclass(frozen=True)
class Request:
    """One user message of the workload."""

    conversation: int
    """Index of the conversation (one thread per conversation)."""
    turn: int
    """0 for the opening request, 1.. for follow-ups in the same thread."""
    text: str
    """What the user writes."""
    label: str
    """The agent that should handle it."""
    keyword: bool
    """Whether the text holds a routing keyword (accord's free rule tier can place it)."""


def build_workload(requests: int, *, follow_ups: int = 1, seed: int = 7) -> list[list[Request]]:
    """``requests`` requests in conversations of ``1 + follow_ups`` turns, deterministically."""
    rng = random.Random(seed)
    turns = 1 + follow_ups
    conversations: list[list[Request]] = []
    made = 0
    while made < requests:
        convo: list[Request] = []
        for turn in range(min(turns, requests - made)):
            label, keyword, template = rng.choice(TEMPLATES)
            text = template.format(inv=rng.choice(INVOICES), email=rng.choice(EMAILS))
            if turn:
                text = f"Thanks. One more thing: {text[0].lower()}{text[1:]}"
            # A request number keeps texts distinct, so the scripted model can look up labels.
            text = f"{text} (#{made + 1})"
            convo.append(Request(len(conversations), turn, text, label, keyword))
            made += 1
        conversations.append(convo)
    return conversations


def flatten(conversations: list[list[Request]]) -> list[Request]:
    return [r for convo in conversations for r in convo]


def labels_of(conversations: list[list[Request]]) -> dict[str, str]:
    """Request text -> label (what the scripted classifier looks up)."""
    return {r.text: r.label for r in flatten(conversations)}
