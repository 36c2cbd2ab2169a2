"""Budgets: reserve before a call, commit or release after, in Decimal, shared and nested safely."""

from __future__ import annotations

import threading
from decimal import Decimal

import anyio
import anyio.lowlevel
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from handoffs.budget import Budget, Reservation
from handoffs.errors import BudgetExceeded, HandoffsError

D = Decimal


def held(budget: Budget) -> tuple[Decimal, Decimal]:
    return budget.spent_usd, budget.reserved_usd


# --- one budget -------------------------------------------------------------------------------


def test_a_reservation_holds_money_until_it_is_committed() -> None:
    budget = Budget("1.00")
    hold = budget.reserve("0.30")
    assert held(budget) == (0, D("0.30"))
    assert budget.remaining_usd == D("0.70")
    hold.commit(D("0.25"))
    assert held(budget) == (D("0.25"), 0)
    assert budget.remaining_usd == D("0.75")


def test_a_commit_above_the_hold_is_recorded_in_full() -> None:
    budget = Budget("1.00")
    budget.reserve("0.30").commit(D("0.40"))
    assert held(budget) == (D("0.40"), 0)


def test_release_gives_the_hold_back_and_is_idempotent() -> None:
    budget = Budget("1.00")
    hold = budget.reserve("0.30")
    budget.reserve("0.20")
    hold.release()
    hold.release()
    assert held(budget) == (0, D("0.20"))


def test_release_after_commit_does_not_undo_the_spend() -> None:
    budget = Budget("1.00")
    hold = budget.reserve("0.30")
    hold.commit(D("0.10"))
    hold.release()
    assert held(budget) == (D("0.10"), 0)


def test_a_reservation_settles_only_once() -> None:
    budget = Budget("1.00")
    committed = budget.reserve("0.30")
    committed.commit(D("0.10"))
    with pytest.raises(RuntimeError, match="already settled"):
        committed.commit(D("0.10"))
    released = budget.reserve("0.30")
    released.release()
    with pytest.raises(RuntimeError, match="already settled"):
        released.commit(D("0.10"))
    assert held(budget) == (D("0.10"), 0)


def test_leaving_a_reservation_block_releases_an_uncommitted_hold() -> None:
    budget = Budget("1.00")
    with budget.reserve("0.30") as hold:
        assert isinstance(hold, Reservation)
        assert budget.reserved_usd == D("0.30")
    assert held(budget) == (0, 0)
    with budget.reserve("0.30") as hold:
        hold.commit(D("0.05"))
    assert held(budget) == (D("0.05"), 0)


def test_a_reservation_block_releases_when_the_call_raises() -> None:
    budget = Budget("1.00")
    with pytest.raises(ZeroDivisionError), budget.reserve("0.30"):
        _ = 1 / 0
    assert held(budget) == (0, 0)


def test_amounts_are_decimal_so_float_inputs_add_up_exactly() -> None:
    budget = Budget(0.3)
    assert budget.limit_usd == D("0.3")
    budget.reserve(0.1).commit(D("0.1"))
    budget.reserve(0.2).commit(D("0.2"))
    assert budget.spent_usd == D("0.3")
    assert budget.remaining_usd == 0


def test_the_limit_itself_can_be_reserved_but_not_a_cent_more() -> None:
    budget = Budget("1.00")
    budget.reserve("0.60")
    budget.reserve("0.40")
    with pytest.raises(BudgetExceeded):
        budget.reserve("0.01")
    assert budget.reserved_usd == D("1.00")


def test_a_refusal_carries_limit_spent_reserved_and_requested() -> None:
    budget = Budget("1.00", name="job-7")
    budget.reserve("0.50").commit(D("0.25"))
    budget.reserve("0.50")
    with pytest.raises(BudgetExceeded) as caught:
        budget.reserve("0.30")
    exc = caught.value
    assert isinstance(exc, HandoffsError)
    assert (exc.limit, exc.spent, exc.reserved, exc.requested) == (
        D("1.00"),
        D("0.25"),
        D("0.50"),
        D("0.30"),
    )
    assert "'job-7'" in str(exc)
    assert held(budget) == (D("0.25"), D("0.50"))


def test_can_cover_predicts_whether_reserve_succeeds() -> None:
    budget = Budget("1.00")
    budget.reserve("0.70")
    assert budget.can_cover(D("0.30"))
    assert not budget.can_cover(D("0.31"))


def test_negative_amounts_and_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Budget(-1)
    budget = Budget("1.00")
    with pytest.raises(ValueError, match="negative"):
        budget.reserve("-0.01")
    assert held(budget) == (0, 0)


def test_an_unlimited_budget_reserves_anything_and_still_keeps_account() -> None:
    budget = Budget()
    assert budget.limit_usd is None
    assert budget.remaining_usd is None
    assert budget.can_cover(D(10) ** 9)
    budget.reserve(D(10) ** 9).commit(D("12.5"))
    assert held(budget) == (D("12.5"), 0)


def test_charge_records_unreserved_spending_here_and_in_every_parent() -> None:
    job = Budget("1.00")
    handoff = job.child(D("0.50"), name="h")
    handoff.charge(D("0.05"))
    assert held(handoff) == (D("0.05"), 0)
    assert held(job) == (D("0.05"), 0)


# --- nested budgets ---------------------------------------------------------------------------


def test_a_child_reserves_and_settles_in_its_parent_too() -> None:
    job = Budget("1.00")
    handoff = job.child(D("0.50"), name="h")
    hold = handoff.reserve("0.30")
    assert held(handoff) == held(job) == (0, D("0.30"))
    hold.commit(D("0.20"))
    assert held(handoff) == held(job) == (D("0.20"), 0)
    handoff.reserve("0.10").release()
    assert held(handoff) == held(job) == (D("0.20"), 0)


def test_a_parent_refusal_leaves_the_child_untouched() -> None:
    job = Budget("0.25", name="job")
    job.reserve("0.05")
    handoff = job.child(D("1.00"), name="h")
    with pytest.raises(BudgetExceeded) as caught:
        handoff.reserve("0.50")
    assert caught.value.limit == D("0.25")
    assert "'job'" in str(caught.value)
    assert held(handoff) == (0, 0)
    assert held(job) == (0, D("0.05"))


def test_a_child_refusal_leaves_the_parents_reserved_amount_unchanged() -> None:
    job = Budget("1.00", name="job")
    job.reserve("0.10")
    handoff = job.child(D("0.20"), name="h")
    with pytest.raises(BudgetExceeded) as caught:
        handoff.reserve("0.30")
    assert caught.value.limit == D("0.20")
    assert "'h'" in str(caught.value)
    assert held(job) == (0, D("0.10"))
    assert held(handoff) == (0, 0)


def test_a_childs_remaining_is_the_tighter_of_its_own_and_its_parents() -> None:
    job = Budget("1.00")
    handoff = job.child(D("0.50"), name="h")
    assert handoff.remaining_usd == D("0.50")
    job.reserve("0.70")
    assert handoff.remaining_usd == D("0.30")
    assert not handoff.can_cover(D("0.31"))


def test_an_unlimited_child_is_bounded_by_its_parent() -> None:
    job = Budget("1.00")
    handoff = job.child(None, name="h")
    assert handoff.remaining_usd == D("1.00")
    with pytest.raises(BudgetExceeded):
        handoff.reserve("1.01")
    assert held(job) == (0, 0)


# --- concurrency ------------------------------------------------------------------------------

CYCLES = 1000


async def test_concurrent_tasks_reserve_exactly_what_the_limit_allows() -> None:
    """Every hold is committed in full, so money never comes back: exactly limit/amount succeed."""
    job = Budget("5.00")
    outcomes: list[bool] = []

    async def cycle() -> None:
        try:
            hold = job.reserve("0.01")
        except BudgetExceeded:
            outcomes.append(False)
            return
        assert job.spent_usd + job.reserved_usd <= D("5.00")
        await anyio.lowlevel.checkpoint()
        hold.commit(D("0.01"))
        outcomes.append(True)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(CYCLES):
                tg.start_soon(cycle)
    assert outcomes.count(True) == 500
    assert held(job) == (D("5.00"), 0)


async def test_concurrent_child_budgets_never_overspend_the_job() -> None:
    job = Budget("2.00")
    spent: list[Decimal] = []
    peak = D(0)

    async def cycle(i: int) -> None:
        nonlocal peak
        handoff = job.child(D("0.05"), name=f"h{i}")
        try:
            hold = handoff.reserve(D("0.01") * (1 + i % 5))
        except BudgetExceeded:
            return
        peak = max(peak, job.spent_usd + job.reserved_usd)
        await anyio.lowlevel.checkpoint()
        if i % 3 == 0:
            hold.release()
        else:
            actual = hold.amount / (1 + i % 2)
            hold.commit(actual)
            spent.append(actual)
        assert handoff.reserved_usd == 0

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(CYCLES):
                tg.start_soon(cycle, i)
    assert peak <= D("2.00")
    assert spent
    assert held(job) == (sum(spent, D(0)), 0)


async def test_reserve_and_commit_from_many_threads_lose_no_update() -> None:
    job = Budget("5.00")
    lock = threading.Lock()
    granted = 0

    def cycle() -> None:
        nonlocal granted
        try:
            hold = job.reserve("0.01")
        except BudgetExceeded:
            return
        hold.commit(D("0.01"))
        with lock:
            granted += 1

    limiter = anyio.CapacityLimiter(16)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(CYCLES):
                tg.start_soon(lambda: anyio.to_thread.run_sync(cycle, limiter=limiter))
    assert granted == 500
    assert held(job) == (D("5.00"), 0)


async def test_threads_sharing_a_job_through_children_end_fully_settled() -> None:
    job = Budget("3.00")
    lock = threading.Lock()
    actuals: list[Decimal] = []

    def cycle(i: int) -> None:
        handoff = job.child(D("0.02"), name=f"h{i}")
        try:
            hold = handoff.reserve("0.02")
        except BudgetExceeded:
            return
        if i % 4 == 0:
            hold.release()
            return
        actual = D("0.01") * (1 + i % 2)
        hold.commit(actual)
        with lock:
            actuals.append(actual)

    limiter = anyio.CapacityLimiter(16)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(CYCLES):
                tg.start_soon(lambda i=i: anyio.to_thread.run_sync(cycle, i, limiter=limiter))
    assert held(job) == (sum(actuals, D(0)), 0)
    assert job.spent_usd <= D("3.00")


# --- a state machine over random reserve / commit / release sequences -------------------------

cents = st.integers(min_value=0, max_value=60).map(lambda n: D(n) / 100)


class BudgetMachine(RuleBasedStateMachine):
    """A job budget and one child, checked against a plain Decimal model of both."""

    def __init__(self) -> None:
        super().__init__()
        self.job = Budget("1.00", name="job")
        self.child = self.job.child(D("0.40"), name="child")
        self.model = {"job": [D(0), D(0)], "child": [D(0), D(0)]}  # [spent, reserved]
        self.open: list[tuple[Reservation, bool]] = []  # (hold, made on the child)

    def _fits(self, name: str, limit: str, amount: Decimal) -> bool:
        spent, reserved = self.model[name]
        return spent + reserved + amount <= D(limit)

    @rule(amount=cents, on_child=st.booleans())
    def reserve(self, amount: Decimal, on_child: bool) -> None:
        names = ["child", "job"] if on_child else ["job"]
        fits = self._fits("job", "1.00", amount) and (
            not on_child or self._fits("child", "0.40", amount)
        )
        try:
            hold = (self.child if on_child else self.job).reserve(amount)
        except BudgetExceeded as exc:
            assert not fits
            assert exc.requested == amount
            return
        assert fits
        for name in names:
            self.model[name][1] += amount
        self.open.append((hold, on_child))

    @precondition(lambda self: self.open)
    @rule(data=st.data(), share=st.integers(min_value=0, max_value=4))
    def commit(self, data: st.DataObject, share: int) -> None:
        hold, on_child = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        actual = hold.amount * share / 4
        hold.commit(actual)
        for name in ["child", "job"] if on_child else ["job"]:
            self.model[name][0] += actual
            self.model[name][1] -= hold.amount

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hold, on_child = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        hold.release()
        hold.release()
        for name in ["child", "job"] if on_child else ["job"]:
            self.model[name][1] -= hold.amount

    @invariant()
    def never_over_the_limit(self) -> None:
        assert self.job.spent_usd + self.job.reserved_usd <= D("1.00")
        assert self.child.spent_usd + self.child.reserved_usd <= D("0.40")

    @invariant()
    def matches_the_model(self) -> None:
        assert list(held(self.job)) == self.model["job"]
        assert list(held(self.child)) == self.model["child"]


BudgetMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_budget_state_machine = BudgetMachine.TestCase


def test_money_prints_as_a_plain_decimal_however_small() -> None:
    from handoffs import HandoffRecord
    from handoffs.budget import usd_text

    tiny = Decimal("9E-7")  # what 45 tokens at $0.02 per million cost
    assert str(tiny) == "9E-7"  # Decimal's own text
    record = HandoffRecord(
        task_id="t", task_kind="k", risk="low", status="delivered", route=("a",), cost_usd=tiny
    )
    assert str(record.cost_usd) == "0.0000009" and f"{record.cost_usd}" == "0.0000009"
    assert record.cost_usd == tiny and isinstance(record.cost_usd, Decimal)
    assert '"cost_usd":"0.0000009"' in record.model_dump_json()
    assert HandoffRecord.model_validate_json(record.model_dump_json()) == record
    assert usd_text(tiny) == "0.0000009" and usd_text(Decimal("1E+1")) == "10"
