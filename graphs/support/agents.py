"""Rule-based versions of the support agents: deterministic, no model, the offline default.

Each handler takes the query-only handoff and the agent's gated tool calls and returns an
``AgentResult``; tool calls that a policy sends to a human come back as a proposed action.
"""

from __future__ import annotations

import re
from typing import Any

from accord.agents.handoff import AgentResult, Handoff
from accord.agents.runner import ToolCalls

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|<EMAIL_\d+>")
"""An email, or the placeholder the PII guard put in its place (the tools resolve it)."""
INVOICE = re.compile(r"\bINV-\d{4}\b", re.IGNORECASE)
AMOUNT = re.compile(r"\$\s?(\d+(?:\.\d{1,2})?)|(\d+(?:\.\d{1,2})?)\s?(?:usd|dollars)", re.IGNORECASE)


def _email(handoff: Handoff) -> str | None:
    found = EMAIL.search(handoff.query)
    if found is None:
        return handoff.context.get("customer_email")
    return found.group(0) if found.group(0).startswith("<") else found.group(0).lower()


def billing_rules(handoff: Handoff, tools: ToolCalls) -> AgentResult:
    """Invoices and refunds."""
    found = INVOICE.search(handoff.query)
    if found is None:
        email = _email(handoff)
        if email is None:
            return AgentResult(
                "Which invoice is this about? Please give the invoice number (INV-…) or your email.",
                status="failed",
            )
        customer = tools("lookup_customer", email=email)
        if "error" in customer:
            return AgentResult(customer["error"], status="failed")
        lines = [f"{i['id']}: ${i['amount']:.2f} ({i['status']}) {i['description']}" for i in customer["invoices"]]
        return AgentResult(
            f"Invoices for {customer['name']}:\n" + "\n".join(lines),
            writes={"customer_email": email},
        )
    invoice = tools("get_invoice", invoice_id=found.group(0).upper())
    if "error" in invoice:
        return AgentResult(invoice["error"], status="failed")
    writes: dict[str, Any] = {"customer_email": invoice["email"], "invoice": invoice["id"]}
    if not re.search(r"\brefund|money back|charge ?back\b", handoff.query, re.IGNORECASE):
        return AgentResult(
            f"{invoice['id']}: ${invoice['amount']:.2f}, {invoice['status']}, issued "
            f"{invoice['issued_at']} ({invoice['description']}); refunded so far ${invoice['refunded']:.2f}.",
            writes=writes,
        )
    left = round(invoice["amount"] - invoice["refunded"], 2)
    match = AMOUNT.search(handoff.query)
    amount = min(float(match.group(1) or match.group(2)), left) if match else left
    if amount <= 0:
        return AgentResult(f"{invoice['id']} has already been refunded in full.", writes=writes)
    args = {"invoice_id": invoice["id"], "amount": amount, "reason": handoff.query[:200]}
    review = tools.review("issue_refund", args)  # back from the approval: the manager decided
    if review is not None and review.decision == "reject":
        return AgentResult(
            f"The refund of ${amount:.2f} on {invoice['id']} was not approved: {review.message}",
            status="failed", writes=writes,
        )
    if review is not None and review.decision == "respond":
        return AgentResult(review.message or "", writes=writes)
    if review is not None and review.error is not None:
        return AgentResult(f"The refund of ${amount:.2f} on {invoice['id']} was approved but "
                           f"failed: {review.error}", status="failed", writes=writes)
    action = tools.gate("issue_refund", args, why=f"refund of ${amount:.2f} on {invoice['id']}")
    if action is not None:
        return AgentResult(
            f"A refund of ${amount:.2f} on {invoice['id']} needs a manager's approval; I've asked for it.",
            status="needs_approval",
            action=action,
            writes=writes,
        )
    refund = tools("issue_refund", **args)  # once approved: the approval's refund, not a new one
    approved = f", approved by {review.by or 'a manager'}" if review is not None else ""
    return AgentResult(
        f"Refunded ${refund['amount']:.2f} on {invoice['id']} (refund #{refund['refund_id']}){approved}.",
        output=refund,
        writes=writes,
    )


def tech_rules(handoff: Handoff, tools: ToolCalls) -> AgentResult:
    """Troubleshooting from the knowledge base, else a ticket for engineering."""
    articles = tools("search_kb", query=handoff.query)
    if articles:
        best = articles[0]
        return AgentResult(f"{best['title']} ({best['id']}): {best['body']}", output={"article": best["id"]})
    ticket = tools(
        "create_ticket", subject="Technical issue", body=handoff.query, queue="engineering",
        customer_email=_email(handoff),
    )
    return AgentResult(
        f"I couldn't find a known fix, so I opened ticket #{ticket['ticket_id']} with engineering.",
        output=ticket,
    )


def account_rules(handoff: Handoff, tools: ToolCalls) -> AgentResult:
    """Password resets, plan questions, cancellations."""
    email = _email(handoff)
    text = handoff.query.lower()
    if re.search(r"password|locked out|can't log ?in|cannot log ?in|reset", text):
        if email is None:
            return AgentResult("Which email is the account under? I'll send a reset link there.", status="failed")
        reset = tools("send_password_reset", email=email)
        return AgentResult(f"I sent a password-reset link to {reset['email']}.", writes={"customer_email": email})
    if email is not None:
        customer = tools("lookup_customer", email=email)
        if "error" not in customer and re.search(r"plan|upgrade|downgrade|subscription", text):
            return AgentResult(
                f"{customer['name']} is on the {customer['plan']} plan. Plan changes take effect "
                "at the next billing cycle.",
                writes={"customer_email": email},
            )
    ticket = tools("create_ticket", subject="Account request", body=handoff.query, queue="support",
                   customer_email=email)
    return AgentResult(f"I opened ticket #{ticket['ticket_id']} for the account team.", output=ticket)
