"""A task of your own, offline, answered by real models: product reviews' sentiment and product.

Shows: a new kind of task (not the bundled tickets) written the README's way — two pydantic types,
`load_config`, `open_portfolio`, `Session`, `Task` — verified by two predicates a product team would
write (the product named must be in the review; the sentiment must agree with the stars the
customer gave, which the model never sees), answered first by SmolLM2-135M and escalated, when a
check fails, to the stronger local model Qwen2.5-Coder-1.5B. Every answer below comes from a real
model running in this process; nothing is scripted.

With the stronger tier installed (`handoffs models install qwen2.5-coder-1.5b`, opt-in, 1.1 GB)
this runs on `handoffs.local.toml`. Without it, it says so in its first line and runs on
`handoffs.toml`: what SmolLM2 gets wrong then goes to the SIMULATED mid and frontier tiers, whose
answers offline are placeholders (the first allowed value, "simulated" for text) that a real
check rejects, so those reviews come back as the declared fallback, marked degraded.

    .venv/bin/python examples/09_your_own_task.py
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import anyio
from pydantic import BaseModel

from handoffs import Budget, Delivery, Session, Task, checks, load_config, open_portfolio
from handoffs.providers import local_problem


class Review(BaseModel):
    id: str
    text: str


class Reading(BaseModel):
    sentiment: Literal["positive", "negative", "mixed"]
    product: str


REVIEWS = [
    Review(id="R-1", text="The Aeropress Go makes a great cup anywhere. Light, quick to clean, and "
                          "the coffee is smooth. Best thing I bought this year."),
    Review(id="R-2", text="My Kindle Paperwhite died after three weeks and support never answered. "
                          "Screen froze, would not charge. Waste of money."),
    Review(id="R-3", text="The Bose QuietComfort 45 cancel noise well on flights, but the ear pads "
                          "crack after a year and the app is clumsy."),
    Review(id="R-4", text="Returned the Instant Pot Duo: the lid seal leaked steam from day one "
                          "and the manual was useless."),
]  # fmt: skip
STARS = {"R-1": 5, "R-2": 1, "R-3": 3, "R-4": 2}
"""What each customer rated: checked against, never shown to the model."""


def product_in_review(reading: Reading, review: Review) -> tuple[bool, str]:
    named = reading.product.strip().casefold()
    if named and named in review.text.casefold():
        return True, ""
    return False, f"{reading.product!r} is not written in the review: copy the product's name"


def agrees_with_stars(reading: Reading, review: Review) -> tuple[bool, str]:
    stars = STARS[review.id]
    expected = "positive" if stars >= 4 else "negative" if stars <= 2 else "mixed"
    if reading.sentiment == expected:
        return True, ""
    return False, f"sentiment {reading.sentiment!r} does not fit the review's tone"


def review_task(review: Review) -> Task[Reading]:
    return Task(
        kind="classify",
        input=review,
        output_type=Reading,
        instructions=(
            "Read the product review. sentiment: positive, negative, or mixed (praise and "
            "complaints). product: the product's name exactly as written in the review."
        ),
        checks=[checks.predicate(product_in_review), checks.predicate(agrees_with_stars)],
        max_output_tokens=40,
        fallback=Reading(sentiment="mixed", product="(needs a human)"),
    )


def show(review: Review, delivery: Delivery[Reading], label: dict[str, str]) -> None:
    print(f"{review.id} ({STARS[review.id]}/5 stars) {review.text[:60]}...")
    for a in delivery.attempts:
        failed = "; ".join(r for v in a.verdicts if not v.passed for r in v.reasons)
        note = a.error or failed or "passed both checks"
        retry = " (retry)" if a.feedback else ""
        print(f"  {a.model:<16}{label[a.model]:<10}{a.outcome:<15}{note}{retry}")
    out = delivery.output
    who = "DEGRADED: the fallback" if delivery.degraded else f"{delivery.model}"
    print(f"  => {out.sentiment}, {out.product!r} ({who})")


async def main() -> None:
    problem = local_problem("qwen2.5-coder-1.5b")
    if problem is None:
        config = load_config("handoffs.local.toml")
        print("stronger local tier: installed (handoffs.local.toml)")
    else:
        config = load_config("handoffs.toml")
        print(
            "stronger local tier: NOT installed, so answers SmolLM2 gets wrong go to the simulated "
            "tiers, whose offline answers are placeholders (`handoffs models install "
            "qwen2.5-coder-1.5b` for real ones)"
        )
    with open_portfolio(config) as portfolio:
        label = {m: portfolio.label(m) for m in config.catalog}
        print("models:", ", ".join(f"{m} ({label[m]})" for m in config.catalog))
        session = Session(
            catalog=config.catalog, models=portfolio, policy=config.policy, budget=Budget("0.05")
        )
        delivered = Counter[str]()
        for review in REVIEWS:
            delivery = await session.delegate(review_task(review))
            show(review, delivery, label)
            delivered["degraded" if delivery.degraded else str(delivery.model)] += 1
        print("delivered by:", ", ".join(f"{m} {n}" for m, n in delivered.most_common()))


if __name__ == "__main__":
    anyio.run(main)
